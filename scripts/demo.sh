#!/usr/bin/env bash
# scripts/demo.sh - the project's main job, end to end, on a fresh machine:
#   builds the `knative` binary, starts a real kube-apiserver on loopback (scripts/envtest.sh;
#   about 8 minutes the first time, seconds afterwards), installs the SDK's CRDs generated from
#   the Rust types (`knative crds`), and applies Knative's own "Hello World" Service unchanged.
# Leaves the control plane running and prints how to use and stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[demo] %s\n' "$*" >&2; }

log "building knative"
cargo build --release -p knative-platform
knative="${CARGO_TARGET_DIR:-target}/release/knative"

KUBECONFIG="$(scripts/envtest.sh up)"
export KUBECONFIG
kubectl="${ENVTEST_CACHE:-$HOME/.cache/envtest}/bin/kubectl"

log "installing the CRDs: knative crds | kubectl apply -f -"
"$knative" crds | "$kubectl" apply -f -
"$kubectl" wait --for=condition=Established crd --all --timeout=60s >/dev/null

log "applying Knative's helloworld-go Service unchanged"
"$kubectl" apply -f examples/manifests/helloworld-go.yaml
"$kubectl" get ksvc hello -o yaml

cat >&2 <<MSG
[demo] done. The API server keeps running:
  export KUBECONFIG=$KUBECONFIG
  $kubectl get ksvc,kcfg,rev,rt
  scripts/envtest.sh down     # stop it
MSG
