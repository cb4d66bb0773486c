#!/usr/bin/env bash
# The whole loop on one machine, without a real cluster: Serin's dev cluster (an in-memory
# Kubernetes API), `serin loadtester`, and `serin controller`. Applies the podinfo Deployment and
# its Canary with kubectl, waits for the canary to initialise, ships a new image and follows the
# analysis to the promotion, then shows what kubectl shows. Takes about a minute (the analysis
# interval is 10 s). Usage: scripts/try-dev-cluster.sh [--keep]  (--keep: leave it all running).
set -euo pipefail
cd "$(dirname "$0")/.."

keep=false
[ "${1:-}" = "--keep" ] && keep=true

cargo build -q -p serin
serin=$PWD/target/debug/serin
work=$(mktemp -d)
export KUBECONFIG="$work/kubeconfig"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "== dev cluster"
"$serin" dev-cluster --kubeconfig "$KUBECONFIG" --ready-delay-ms 2000 >"$work/dev-cluster.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -s "$KUBECONFIG" ] && break; sleep 0.1; done
[ -s "$KUBECONFIG" ] || { cat "$work/dev-cluster.log"; exit 1; }
kubectl config view -o jsonpath='{.clusters[0].cluster.server}{"\n"}'

echo "== CRDs: Serin's and Istio's"
"$serin" crds | kubectl apply -f -
kubectl apply -f examples/istio-crds.yaml
kubectl wait --for condition=established --timeout=10s crd/canaries.flagger.app crd/virtualservices.networking.istio.io

echo "== loadtester and controller"
lt_port=$(free_port)
"$serin" loadtester --port "$lt_port" >"$work/loadtester.log" 2>&1 &
pids+=($!)
"$serin" controller --kubeconfig "$KUBECONFIG" --port "$(free_port)" --log-level info \
  --metrics-server http://127.0.0.1:1 >"$work/controller.log" 2>&1 &
pids+=($!)

echo "== the podinfo example"
sed "s#http://127.0.0.1:8080/#http://127.0.0.1:$lt_port/#" examples/podinfo/canary-dev.yaml >"$work/canary.yaml"
"$serin" validate examples/podinfo/canary.yaml "$work/canary.yaml"
kubectl apply -f examples/podinfo/namespace.yaml
kubectl apply -f examples/podinfo/deployment.yaml -f "$work/canary.yaml"

phase() { kubectl -n test get canary podinfo -o jsonpath='{.status.phase}' 2>/dev/null || true; }
follow() { # follow until the phase is one of $@, printing `kubectl get canary` on every change
  local last="" line deadline=$((SECONDS + 180))
  while [ $SECONDS -lt $deadline ]; do
    line=$(kubectl -n test get canary podinfo --no-headers 2>/dev/null || true)
    [ "$line" != "$last" ] && { echo "$line"; last=$line; }
    for want in "$@"; do [ "$(phase)" = "$want" ] && return 0; done
    sleep 1
  done
  echo "timed out; controller log:"; tail -20 "$work/controller.log"; return 1
}
kubectl -n test get canary podinfo
follow Initialized
kubectl -n test get deployments,services,virtualservices,destinationrules,hpa

echo "== ship a new version"
kubectl -n test set image deployment/podinfo podinfod=stefanprodan/podinfo:3.1.1
follow Succeeded Failed
echo
kubectl -n test describe canary podinfo | sed -n '/^Events:/,$p'
echo
echo "primary image: $(kubectl -n test get deployment podinfo-primary -o jsonpath='{.spec.template.spec.containers[0].image}')"
echo "controller log (jq .msg):"
grep -o '"msg":"[^"]*"' "$work/controller.log" | sed 's/"msg":"\(.*\)"/  \1/' | grep -E "revision|Advance|Copying|Promotion|Routing" | head -20

if $keep; then
  echo "== still running; export KUBECONFIG=$KUBECONFIG (Ctrl-C to stop)"
  wait
fi
