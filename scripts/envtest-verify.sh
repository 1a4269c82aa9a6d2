#!/usr/bin/env bash
# envtest-verify.sh KUBECONFIG - smoke test of a control plane started by envtest-up.sh:
#   CRD + server-side schema validation + empty strings / zero values in a custom resource +
#   status subresource + watch + server-side apply + Deployment -> ReplicaSet -> Pods + owner GC.
# Uses its own namespace and CRD group (removed at the end); prints VERIFY-OK on success.
#   KUBECTL  kubectl to use (default: $ENVTEST_CACHE/bin/kubectl, ENVTEST_CACHE as for envtest-up.sh)
#   ENVTEST_CONTROLLER_MANAGER=0  the control plane runs without kube-controller-manager: skip its checks
set -euo pipefail
export KUBECONFIG="${1:?usage: $0 KUBECONFIG}"
K="${KUBECTL:-${ENVTEST_CACHE:-$HOME/.cache/envtest}/bin/kubectl}"
ns=verify-$$
crd=widgets.verify-$$.example.dev
group=verify-$$.example.dev
tmp=$(mktemp -d)
fail() { echo "FAIL: $*" >&2; exit 1; }
cleanup() {
    $K delete ns "$ns" --ignore-not-found --wait=false >/dev/null 2>&1 || true
    $K delete crd "$crd" --ignore-not-found --wait=false >/dev/null 2>&1 || true
    rm -rf "$tmp"
}
trap cleanup EXIT

$K version --short
$K get ns
$K create ns "$ns"
$K apply -f - <<YAML
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: $crd}
spec:
  group: $group
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1}
              str: {type: string}
              map: {type: object, additionalProperties: {type: string}}
              list: {type: array, items: {type: string}}
              flag: {type: boolean}
              num: {type: integer}
              flt: {type: number}
          status: {type: object, properties: {ready: {type: boolean}, message: {type: string}}}
YAML
$K wait --for=condition=Established "crd/$crd" --timeout=30s

# watch in the background while objects are created/changed
( timeout 6 $K -n "$ns" get "widgets.$group" --watch --output-watch-events \
    -o custom-columns=EVENT:.type,NAME:.object.metadata.name,GEN:.object.metadata.generation > "$tmp/watch" 2>&1 || true ) &
sleep 1.5

# server-side apply + schema validation
printf 'apiVersion: %s/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 1}\n' "$group" |
    $K -n "$ns" apply --server-side --field-manager=verify -f -
out=$(printf 'apiVersion: %s/v1\nkind: Widget\nmetadata: {name: w1}\nspec: {size: 0}\n' "$group" |
    $K -n "$ns" apply --validate=false --server-side --field-manager=verify -f - 2>&1 || true)
echo "$out" | grep -q 'greater than or equal to 1' && echo "server-side schema validation: OK" || fail "unexpected: $out"
$K -n "$ns" patch "widget.$group" w1 --type=merge -p '{"spec":{"size":2}}'

# empty strings and other zero values (create via client-side apply, via server-side apply, via merge patch)
printf 'apiVersion: %s/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {size: 1, str: "", map: {k: ""}, list: [""], flag: false, num: 0, flt: 0.0}\n' "$group" |
    $K -n "$ns" apply -f -
printf 'apiVersion: %s/v1\nkind: Widget\nmetadata: {name: w3}\nspec: {size: 1, str: "", map: {k: ""}}\n' "$group" |
    $K -n "$ns" apply --server-side --field-manager=verify -f -
$K -n "$ns" patch "widget.$group" w1 --type=merge -p '{"spec":{"str":"","map":{"k":""}}}'
# go-template %q prints "" for an empty string and %!q(<nil>) for null/missing
tpl='{{printf "%q|%q|%q|%v|%v|%v|%v" .spec.str .spec.map.k (index .spec.list 0) .spec.flag .spec.num .spec.flt .spec.size}}'
v=$($K -n "$ns" get "widget.$group" w2 -o go-template="$tpl")
[ "$v" = '""|""|""|false|0|0|1' ] || fail "w2: str|map.k|list[0]|flag|num|flt|size read back as $v"
tpl='{{printf "%q|%q" .spec.str .spec.map.k}}'
for w in w1 w3; do
    v=$($K -n "$ns" get "widget.$group" "$w" -o go-template="$tpl")
    [ "$v" = '""|""' ] || fail "$w: str|map.k read back as $v"
done
echo "empty strings / zero values in a custom resource: OK"
$K -n "$ns" get "widget.$group" w2 -o jsonpath='{.spec}{"\n"}'

# status subresource (kubectl 1.20 has no --subresource: PUT .../status directly)
rv=$($K -n "$ns" get "widget.$group" w1 -o jsonpath='{.metadata.resourceVersion}')
printf '{"apiVersion":"%s/v1","kind":"Widget","metadata":{"name":"w1","namespace":"%s","resourceVersion":"%s"},"spec":{"size":99},"status":{"ready":true,"message":""}}\n' \
    "$group" "$ns" "$rv" > "$tmp/w1.json"
$K replace --raw "/apis/$group/v1/namespaces/$ns/widgets/w1/status" -f "$tmp/w1.json" >/dev/null
$K get --raw "/apis/$group/v1/namespaces/$ns/widgets/w1/status" >/dev/null
v=$($K -n "$ns" get "widget.$group" w1 -o go-template='{{.spec.size}}|{{.status.ready}}|{{printf "%q" .status.message}}')
[ "$v" = '2|true|""' ] || fail "w1 after PUT .../status: spec.size|status.ready|status.message = $v, expected 2|true|\"\""
echo "status subresource GET/PUT: OK"

wait
echo "--- watch events:"; cat "$tmp/watch"
grep -q '^ADDED *w1' "$tmp/watch" && grep -q '^MODIFIED *w1' "$tmp/watch" || fail "watch did not see ADDED/MODIFIED w1"

# core types: empty ConfigMap value
$K -n "$ns" create configmap cm --from-literal=empty= >/dev/null
[ "$($K -n "$ns" get configmap cm -o jsonpath='{.data}')" = '{"empty":""}' ] || fail "ConfigMap empty value"
echo "ConfigMap with empty value: OK"

if [ "${ENVTEST_CONTROLLER_MANAGER:-1}" != 1 ]; then   # no controller-manager: no Deployment / GC / namespace cleanup
    echo "ENVTEST_CONTROLLER_MANAGER=$ENVTEST_CONTROLLER_MANAGER: skipping the Deployment/GC checks"
    $K delete crd "$crd"
    echo VERIFY-OK; exit 0
fi

# controller-manager: Deployment -> ReplicaSet -> Pods, and owner-reference GC
$K -n "$ns" create deployment web --image=nginx --replicas=2
for i in $(seq 1 40); do [ "$($K -n "$ns" get pods --no-headers 2>/dev/null | wc -l)" = 2 ] && break; sleep 0.5; done
$K -n "$ns" get deploy,rs,pods
[ "$($K -n "$ns" get pods --no-headers 2>/dev/null | wc -l)" = 2 ] || fail "Deployment did not get 2 Pods (is kube-controller-manager running?)"
$K -n "$ns" delete deployment web
for i in $(seq 1 40); do [ "$($K -n "$ns" get rs,pods --no-headers 2>/dev/null | wc -l)" = 0 ] && break; sleep 0.5; done
left=$($K -n "$ns" get rs,pods --no-headers 2>/dev/null | wc -l)
echo "after deleting the Deployment: $left dependents left"
[ "$left" = 0 ] || fail "garbage collector left $left dependents"

$K delete ns "$ns" --timeout=60s
$K delete crd "$crd"
echo VERIFY-OK
