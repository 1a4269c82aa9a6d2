#!/usr/bin/env bash
# examples/build-and-serve/run.sh - from a git commit to a URL that answers, on one machine:
#   1. makes a temporary git repository of ./function (a std-only Rust HTTP function) and
#      commits it;
#   2. builds that commit with `knative build run` (build.yaml + template.yaml: clone, compile
#      with the commit compiled in, test, copy the binary out of the build's workspace);
#   3. starts `knative local` with a temporary data directory and a free gateway port;
#   4. applies service.yaml, a Knative Service whose image is `local://<the built binary>`;
#   5. waits for the Service to be Ready and curls it through the gateway, expecting
#      `Hello Knative! (built from <commit>)`;
#   6. stops the platform and removes the temporary directory (KEEP=1 keeps it).
#
# KNATIVE=/path/to/knative uses that binary instead of building it with cargo;
# GATEWAY_ADDR=127.0.0.1:PORT picks the gateway's address (default: a free port).
# Needs git, cargo, curl and kubectl (KUBECTL=/path/to/kubectl, or the one scripts/envtest.sh
# builds in ~/.cache/envtest/bin).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
log() { printf '[build-and-serve] %s\n' "$*" >&2; }
kubectl="${KUBECTL:-$(command -v kubectl || true)}"
# scripts/envtest.sh builds one with the test API server.
if [ -z "$kubectl" ] && [ -x "$HOME/.cache/envtest/bin/kubectl" ]; then kubectl="$HOME/.cache/envtest/bin/kubectl"; fi
for tool in git cargo curl "${kubectl:-kubectl}"; do
  command -v "$tool" >/dev/null || { log "$tool is needed (set KUBECTL=/path/to/kubectl for kubectl)"; exit 1; }
done
started=$(date +%s%N)
elapsed() { printf '%d.%03d s' $(( ($(date +%s%N) - started) / 1000000000 )) $(( ($(date +%s%N) - started) / 1000000 % 1000 )); }

if [ -n "${KNATIVE:-}" ]; then
  knative="$KNATIVE"
else
  log "building knative"
  (cd "$root" && cargo build -p knative-platform)
  target_dir="${CARGO_TARGET_DIR:-target}"
  case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
  knative="$target_dir/debug/knative"
  started=$(date +%s%N)
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/build-and-serve.XXXXXX")"
repo="$work/repo" out="$work/out" data="$work/platform"
platform=""
stop() {
  if [ -n "$platform" ]; then
    kill -TERM "$platform" 2>/dev/null || true
    wait "$platform" 2>/dev/null || true
    log "platform stopped"
  fi
  if [ "${KEEP:-0}" = 1 ]; then log "kept $work"; else rm -rf "$work"; fi
}
trap stop EXIT
trap 'exit 130' INT TERM

log "1. a git repository of the function: $repo"
mkdir -p "$repo"
cp -R "$here/function/Cargo.toml" "$here/function/Cargo.lock" "$here/function/src" "$repo/"
git -C "$repo" init --quiet --initial-branch=main
git -C "$repo" add .
git -C "$repo" -c user.name=build-and-serve -c user.email=build-and-serve@example.com -c commit.gpgsign=false \
  commit --quiet -m "greeter"
commit="$(git -C "$repo" rev-parse --short=12 HEAD)"
log "   commit $commit"

log "2. knative build run (source file://$repo, binary to $out)"
sed -e "s|file:///tmp/build-and-serve/repo|file://$repo|" -e "s|/tmp/build-and-serve/out|$out|" \
  "$here/build.yaml" >"$work/build.yaml"
"$knative" build run -f "$work/build.yaml" -f "$here/template.yaml"
[ -x "$out/greeter" ] || { log "the build left no $out/greeter"; exit 1; }

free_port() {
  local port
  for _ in $(seq 100); do
    port=$((20000 + RANDOM % 40000))
    # Nobody answers on it: free (as far as anyone can tell before binding it).
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
  return 1
}
# Each knative local gives its Pods 127.0.0.2, 127.0.0.3, ... on its own, so two running at once
# hand out the same addresses: the second one's queue-proxy cannot listen, and its gateway
# reaches the first one's Pods. Say so when that is what went wrong.
collision_hint() {
  if grep -q "queue-proxy cannot listen" "$work/knative.log"; then
    log "the Pod's queue-proxy could not listen on its address: another knative local on this"
    log "machine runs a Pod on the same 127.0.0.x; stop it and run again"
  fi
}
gateway="${GATEWAY_ADDR:-127.0.0.1:$(free_port)}"
log "3. knative local --data-dir $data --gateway-addr $gateway (log: $work/knative.log)"
mkdir -p "$data"
"$knative" local --data-dir "$data" --gateway-addr "$gateway" 2>"$work/knative.log" &
platform=$!
deadline=$((SECONDS + 30))
while [ "$SECONDS" -lt "$deadline" ]; do
  [ -f "$data/kubeconfig" ] && break
  kill -0 "$platform" 2>/dev/null || break
  sleep 0.1
done
[ -f "$data/kubeconfig" ] || { log "knative local wrote no kubeconfig"; tail -20 "$work/knative.log" >&2; exit 1; }
export KUBECONFIG="$data/kubeconfig"

log "4. the Service greeter with image local://$out/greeter"
sed "s|/tmp/build-and-serve/out|$out|" "$here/service.yaml" >"$work/service.yaml"
"$knative" local apply --data-dir "$data" -f "$work/service.yaml"

log "5. waiting for the Service to be Ready"
ready="" url=""
deadline=$((SECONDS + 60))
while [ "$SECONDS" -lt "$deadline" ]; do
  ready="$("$kubectl" get ksvc greeter -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)"
  url="$("$kubectl" get ksvc greeter -o jsonpath='{.status.url}' 2>/dev/null || true)"
  [ "$ready" = True ] && [ -n "$url" ] && break
  sleep 0.1
done
if [ "$ready" != True ] || [ -z "$url" ]; then
  log "the Service is not Ready after 60 s"
  "$kubectl" get ksvc greeter -o yaml >&2 || true
  tail -20 "$work/knative.log" >&2
  collision_hint
  exit 1
fi
host="${url#http://}"
log "   $url is Ready; curl -H 'Host: $host' http://$gateway/"
answer="$(curl -sS --fail-with-body -m 10 -H "Host: $host" "http://$gateway/")" || {
  log "the gateway did not answer 200: $answer"
  collision_hint
  exit 1
}
printf '%s\n' "$answer"
expected="Hello Knative! (built from $commit)"
if [ "$answer" != "$expected" ]; then
  log "expected: $expected"
  collision_hint
  exit 1
fi
log "6. the function built from commit $commit answers through the gateway ($(elapsed) from the commit)"
