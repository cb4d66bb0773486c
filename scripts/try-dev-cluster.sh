#!/usr/bin/env bash
# Start Serin's dev cluster (an in-memory Kubernetes API), install Serin's CRDs, apply the podinfo
# example (Deployment, HPA, Canary) with kubectl and show what kubectl sees. Stops the cluster on
# exit. Usage: scripts/try-dev-cluster.sh [--keep] (--keep leaves it running until Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."

keep=false
[ "${1:-}" = "--keep" ] && keep=true

cargo build -q -p serin
serin=target/debug/serin
work=$(mktemp -d)
export KUBECONFIG="$work/kubeconfig"

"$serin" dev-cluster --kubeconfig "$KUBECONFIG" --ready-delay-ms 1000 >"$work/dev-cluster.log" 2>&1 &
cluster=$!
trap 'kill $cluster 2>/dev/null; wait $cluster 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do [ -s "$KUBECONFIG" ] && break; sleep 0.1; done
[ -s "$KUBECONFIG" ] || { echo "dev cluster did not start:"; cat "$work/dev-cluster.log"; exit 1; }

echo "== dev cluster: $(kubectl config view -o jsonpath='{.clusters[0].cluster.server}')"
kubectl version -o json | sed -n 's/.*"gitVersion": "\(.*\)".*/server \1/p' | tail -1

echo "== install Serin's CRDs"
"$serin" crds | kubectl apply -f -
kubectl wait --for condition=established --timeout=10s crd/canaries.flagger.app

echo "== check and apply the podinfo example"
"$serin" validate examples/podinfo
kubectl apply -f examples/podinfo/namespace.yaml
kubectl apply -f examples/podinfo/deployment.yaml -f examples/podinfo/canary.yaml
kubectl -n test rollout status deployment/podinfo --timeout=30s

echo "== kubectl get"
kubectl -n test get deployments,hpa
kubectl -n test get canaries
kubectl -n test set image deployment/podinfo podinfod=stefanprodan/podinfo:3.1.1
kubectl -n test rollout status deployment/podinfo --timeout=30s
kubectl -n test get deployment podinfo -o jsonpath='{.spec.template.spec.containers[0].image}{"\n"}'

if $keep; then
  echo "== the dev cluster keeps running; use: export KUBECONFIG=$KUBECONFIG (Ctrl-C to stop)"
  wait $cluster
fi
