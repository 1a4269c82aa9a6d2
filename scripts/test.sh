#!/usr/bin/env bash
# scripts/test.sh - the project's whole test suite, from a fresh machine:
#   1. installs what is missing (rustfmt and clippy; Debian packages, the kube-apiserver build
#      cached in ~/.cache/envtest — about 8 minutes the first time — via scripts/envtest.sh),
#   2. checks formatting and clippy (warnings are errors),
#   3. starts a real etcd + kube-apiserver + kube-controller-manager on loopback,
#   4. runs every unit, doc and integration test of the workspace against it,
#   5. stops the control plane again if it started it.
# Exits non-zero when anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[test] %s\n' "$*" >&2; }

for component in rustfmt clippy; do
    if ! rustup component list --installed 2>/dev/null | grep -q "^$component"; then
        log "installing $component"
        rustup component add "$component"
    fi
done

# Debian packages the tests run for real: nats-server (JetStream channel tests) and git (Build's
# git source in the LocalExecutor tests).
missing=()
command -v nats-server >/dev/null || missing+=(nats-server)
command -v git >/dev/null || missing+=(git)
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing ${missing[*]}"
    apt_get=(apt-get); [ "$(id -u)" = 0 ] || apt_get=(sudo apt-get)
    "${apt_get[@]}" update -qq
    DEBIAN_FRONTEND=noninteractive "${apt_get[@]}" install -y -qq "${missing[@]}"
fi

log "cargo fmt --all --check"
cargo fmt --all --check
log "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

# Build everything before starting the API server, so it is not idle for minutes.
log "building tests"
cargo test --workspace --no-run

run_dir="${ENVTEST_RUN_DIR:-/tmp/envtest-$(id -u)}"
started=0
if ! { [ -s "$run_dir/kubeconfig" ] && [ -s "$run_dir/kube-apiserver.pid" ] && kill -0 "$(cat "$run_dir/kube-apiserver.pid")" 2>/dev/null; }; then
    started=1
fi
KUBECONFIG="$(scripts/envtest.sh up)"
export KUBECONFIG
if [ "$started" = 1 ] && [ "${KEEP_ENVTEST:-0}" != 1 ]; then
    trap 'scripts/envtest.sh down' EXIT
fi

log "cargo test --workspace (KUBECONFIG=$KUBECONFIG)"
cargo test --workspace
log "all tests passed"
