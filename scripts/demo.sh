#!/usr/bin/env bash
# scripts/demo.sh - the project's main job, end to end, on one machine and no cluster:
#   builds `knative` and examples/hello, starts `knative local` (embedded API server,
#   reconcilers, deployments/Endpoints controllers, process runtime with the in-process
#   queue-proxy, activator, gateway) with a temporary data dir, applies examples/hello as a
#   Knative Service (examples/manifests/hello-local.yaml, `image: local://<path>`), waits for
#   its Pod and curls it: directly through the Pod's queue-proxy, then at its URL through the
#   gateway; waits until the idle revision is scaled to zero (Knative's shortest windows, from
#   examples/manifests/config-autoscaler-fast.yaml) and curls it again (the activator holds the
#   request while it starts); applies a second revision with a 50/50 split
#   (examples/manifests/hello-split.yaml) and counts 1000 answers. Stops the platform (SIGTERM)
#   at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[demo] %s\n' "$*" >&2; }

log "building knative and hello"
cargo build -p knative-platform -p hello
bin="${CARGO_TARGET_DIR:-target}/debug"
knative="$bin/knative"
hello="$(cd "$bin" && pwd)/hello"

dir="$(mktemp -d)"
gateway="${GATEWAY_ADDR:-127.0.0.1:8080}"
log "starting knative local --data-dir $dir --gateway-addr $gateway (log: $dir/knative.log)"
"$knative" local --data-dir "$dir" --gateway-addr "$gateway" 2>"$dir/knative.log" &
platform=$!
trap 'kill -TERM $platform 2>/dev/null; wait $platform 2>/dev/null; log "stopped"' EXIT
for _ in $(seq 300); do [ -f "$dir/kubeconfig" ] && break; sleep 0.1; done
[ -f "$dir/kubeconfig" ] || { log "no kubeconfig"; tail -20 "$dir/knative.log"; exit 1; }
export KUBECONFIG="$dir/kubeconfig"

log "applying examples/manifests/config-autoscaler-fast.yaml (6 s windows)"
"$knative" local apply --data-dir "$dir" -f examples/manifests/config-autoscaler-fast.yaml
log "applying examples/manifests/hello-local.yaml with image local://$hello"
sed "s|HELLO_PATH|$hello|" examples/manifests/hello-local.yaml >"$dir/hello.yaml"
"$knative" local apply --data-dir "$dir" -f "$dir/hello.yaml"

log "waiting for the revision's Pod"
ip=""
for _ in $(seq 600); do
  ip="$(kubectl get pods -l serving.knative.dev/revision=hello-00001 \
    -o jsonpath='{.items[0].status.podIP}' 2>/dev/null || true)"
  ready="$(kubectl get deployment hello-00001-deployment \
    -o jsonpath='{.status.readyReplicas}' 2>/dev/null || true)"
  [ -n "$ip" ] && [ "$ready" = 1 ] && break
  sleep 0.1
done
[ -n "$ip" ] || { log "no ready Pod"; tail -20 "$dir/knative.log"; exit 1; }

log "curl through the Pod's queue-proxy: http://$ip:8012/"
curl -sS -H 'Host: hello.default.example.com' "http://$ip:8012/"

log "waiting for the Service to be Ready"
url=""
for _ in $(seq 300); do
  ready="$(kubectl get ksvc hello -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)"
  url="$(kubectl get ksvc hello -o jsonpath='{.status.url}' 2>/dev/null || true)"
  [ "$ready" = True ] && [ -n "$url" ] && break
  sleep 0.1
done
[ "$ready" = True ] || { log "the Service is not Ready"; kubectl get ksvc hello -o yaml >&2; exit 1; }
host="${url#http://}"
log "curl $url through the gateway: Host $host -> http://$gateway/"
curl -sSf -m 10 -H "Host: $host" "http://$gateway/"

log "waiting for the idle revision to scale to zero"
idle=$(date +%s)
for _ in $(seq 1200); do
  [ -z "$(kubectl get pods -l serving.knative.dev/revision=hello-00001 -o name 2>/dev/null)" ] && break
  sleep 0.1
done
[ -z "$(kubectl get pods -l serving.knative.dev/revision=hello-00001 -o name)" ] || { log "still running"; exit 1; }
log "at zero after $(( $(date +%s) - idle )) s; curl again: the activator holds the request while hello starts"
curl -sSf -m 30 -H "Host: $host" -w '(%{time_total} s)\n' "http://$gateway/"

log "applying examples/manifests/hello-split.yaml: a second revision, 50/50"
sed "s|HELLO_PATH|$hello|" examples/manifests/hello-split.yaml >"$dir/hello-split.yaml"
"$knative" local apply --data-dir "$dir" -f "$dir/hello-split.yaml"
for _ in $(seq 600); do
  n="$(kubectl get ksvc hello -o jsonpath='{.status.traffic[*].revisionName}' 2>/dev/null || true)"
  ready="$(kubectl get ksvc hello -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)"
  [ "$n" = "hello-00001 hello-00002" ] && [ "$ready" = True ] && break
  sleep 0.1
done
[ "$n" = "hello-00001 hello-00002" ] || { log "no split: traffic is '$n'"; exit 1; }
log "1000 requests through the gateway:"
for _ in $(seq 1000); do
  curl -sS -m 30 -H "Host: $host" "http://$gateway/"
done | sort | uniq -c
