#!/usr/bin/env bash
# envtest.sh up|down|kubeconfig|verify - a real etcd + kube-apiserver v1.20.2 + kube-controller-manager on loopback.
#
#   up          installs what is missing (Debian packages), builds the binaries once into
#               ~/.cache/envtest (about 8 minutes the first time, seconds afterwards), starts the
#               control plane and prints the kubeconfig path on stdout.
#   down        stops exactly what `up` started.
#   kubeconfig  prints the kubeconfig path of a running control plane.
#   verify      smoke test of the running control plane (envtest-verify.sh): CRD validation, empty
#               strings in custom resources, status subresource, watch, server-side apply,
#               Deployment -> ReplicaSet -> Pods and garbage collection.
#
# All knobs (ENVTEST_*) are documented at the top of envtest-up.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
case "${1:-}" in
    up) exec "$here/envtest-up.sh" ;;
    down) exec "$here/envtest-down.sh" ;;
    kubeconfig) echo "${ENVTEST_RUN_DIR:-/tmp/envtest-$(id -u)}/kubeconfig" ;;
    verify) exec "$here/envtest-verify.sh" "${ENVTEST_RUN_DIR:-/tmp/envtest-$(id -u)}/kubeconfig" ;;
    *) echo "usage: $0 up|down|kubeconfig|verify" >&2; exit 2 ;;
esac
