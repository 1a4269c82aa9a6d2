#!/usr/bin/env bash
# scripts/demo.sh - the project's main job, end to end, on a fresh machine:
#   builds the `knative` binary, starts a real kube-apiserver on loopback (scripts/envtest.sh;
#   about 8 minutes the first time, seconds afterwards), installs the SDK's CRDs generated from
#   the Rust types (`knative crds`), starts `knative controller` (the Serving reconcilers) and
#   applies Knative's own "Hello World" Service unchanged; shows the Configuration, Revision,
#   Route, Ingress and the Revision's Deployment (user container + queue-proxy) it made.
# There is no kubelet in this control plane: the Pods stay Pending (the local platform that runs
# them as processes is a later issue). Leaves the control plane running; stops the controller.
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
"$knative" crds | "$kubectl" apply --server-side --force-conflicts -f -
"$kubectl" wait --for=condition=Established crd --all --timeout=60s >/dev/null

log "starting knative controller"
"$knative" controller --metrics-addr 127.0.0.1:0 2>"${TMPDIR:-/tmp}/knative-controller.log" &
controller=$!
trap 'kill -TERM $controller 2>/dev/null; wait $controller 2>/dev/null' EXIT

log "applying Knative's helloworld-go Service unchanged"
"$kubectl" apply -f examples/manifests/helloworld-go.yaml
for _ in $(seq 1 100); do
    "$kubectl" get deployment hello-00001-deployment >/dev/null 2>&1 && break
    sleep 0.2
done
"$kubectl" get ksvc,configurations,rev,rt,kingress,deployment
"$kubectl" get deployment hello-00001-deployment -o jsonpath='{range .spec.template.spec.containers[*]}{.name}{"  "}{.image}{"\n"}{end}'

cat >&2 <<MSG
[demo] done. The API server keeps running:
  export KUBECONFIG=$KUBECONFIG
  $kubectl get ksvc,configurations,rev,rt
  scripts/envtest.sh down     # stop it
MSG
