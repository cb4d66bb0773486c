#!/usr/bin/env bash
# Head-to-head benchmark: Flagger and Serin one after the other on the same real control plane
# (scripts/real-cluster.sh), with the same workload simulator (`serin simulate-workloads`) and
# the same N Canaries (istio provider with the Istio CRDs, 10 s interval, no metrics, no
# webhooks). The measuring client is crates/serin/examples/bench_flagger.rs; what it measures
# and how: bench/flagger/README.md. A benchmark, not a test: not part of scripts/test.sh or CI.
#
# Usage: bench/flagger/run.sh [N...]          (default: 100 1000)
#   SERIN_BIN=path   the serin binary to benchmark (default target/release/serin; build it with
#                    `cargo build --release -p serin --bin serin`)
#   BENCH_RESULTS=dir  where the outputs go (default bench/flagger/results), one file per N,
#                    named n<N>.txt, the command on its first line
#   BENCH_ARGS="..."   more flags for the measuring client (e.g. "--only serin --idle 5s")
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

if [ "${1:-}" != "--inside" ]; then
  SERIN_BIN_SET="${SERIN_BIN:-}"
  export SERIN_BIN="${SERIN_BIN:-$ROOT/target/release/serin}"
  [ -x "$SERIN_BIN" ] || { echo "no $SERIN_BIN: cargo build --release -p serin --bin serin, or set SERIN_BIN"; exit 1; }
  echo "== building the benchmark client (crates/serin/examples/bench_flagger.rs)"
  (cd "$ROOT" && cargo build -p serin --example bench_flagger --locked --quiet)
  export BENCH_CLIENT="$ROOT/target/debug/examples/bench_flagger"
  echo "== building Flagger (tools/flagger)"
  FLAGGER_DIR="$("$ROOT/tools/flagger/build.sh")"
  export FLAGGER_BIN="$FLAGGER_DIR/flagger"
  FLAGGER_CRDS="$("$ROOT/tools/flagger/build.sh" --crds)"
  export FLAGGER_CRDS
  export BENCH_COMMAND="${SERIN_BIN_SET:+SERIN_BIN=$SERIN_BIN }${BENCH_ARGS:+BENCH_ARGS=\"$BENCH_ARGS\" }bench/flagger/run.sh $*"
  exec "$ROOT/scripts/real-cluster.sh" "$0" --inside "$@"
fi
shift

: "${KUBECONFIG:?run through scripts/real-cluster.sh}"
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(100 1000)
RESULTS="${BENCH_RESULTS:-$ROOT/bench/flagger/results}"
mkdir -p "$RESULTS"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/serin-bench-flagger.XXXXXX")"
PIDS=()
finish() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "controller logs kept in $WORK"
}
trap finish EXIT

echo "== CRDs: Flagger's own and Istio's (examples/istio-crds.yaml)"
kubectl apply -f "$FLAGGER_CRDS" -f "$ROOT/examples/istio-crds.yaml" >/dev/null 2>&1
kubectl wait --for condition=established --timeout=60s crd/canaries.flagger.app \
  crd/virtualservices.networking.istio.io crd/destinationrules.networking.istio.io >/dev/null

# The controllers' own identity (a ServiceAccount bound to cluster-admin, as both charts do in
# effect) and a FlowSchema that matches only it: the API server then counts the controllers'
# requests apart from everyone else's (apiserver_flowcontrol_dispatched_requests_total
# {flow_schema="bench-controller"}). Priority level `exempt`: never queued or throttled by the
# API server's fairness, so the count and the timings are the controller's own.
echo "== the controllers' identity and FlowSchema"
kubectl -n default create serviceaccount bench-controller >/dev/null
kubectl create clusterrolebinding bench-controller --clusterrole=cluster-admin \
  --serviceaccount=default:bench-controller >/dev/null
kubectl apply -f - >/dev/null <<'YAML'
apiVersion: flowcontrol.apiserver.k8s.io/v1
kind: FlowSchema
metadata:
  name: bench-controller
spec:
  matchingPrecedence: 100
  priorityLevelConfiguration:
    name: exempt
  rules:
    - subjects:
        - kind: ServiceAccount
          serviceAccount: {name: bench-controller, namespace: default}
      resourceRules:
        - {verbs: ["*"], apiGroups: ["*"], resources: ["*"], namespaces: ["*"], clusterScope: true}
      nonResourceRules:
        - {verbs: ["*"], nonResourceURLs: ["*"]}
YAML
CONTROLLER_KUBECONFIG="$WORK/controller.kubeconfig"
cp "$KUBECONFIG" "$CONTROLLER_KUBECONFIG"
token="$(kubectl -n default create token bench-controller --duration=24h)"
cluster="$(kubectl config view -o jsonpath='{.clusters[0].name}')"
KUBECONFIG="$CONTROLLER_KUBECONFIG" kubectl config set-credentials bench-controller --token="$token" >/dev/null
KUBECONFIG="$CONTROLLER_KUBECONFIG" kubectl config set-context bench-controller --cluster="$cluster" \
  --user=bench-controller >/dev/null
KUBECONFIG="$CONTROLLER_KUBECONFIG" kubectl config use-context bench-controller >/dev/null

"$SERIN_BIN" simulate-workloads --kubeconfig "$KUBECONFIG" --ready-delay-ms 300 \
  >"$WORK/simulator.log" 2>&1 &
PIDS+=($!)

for n in "${sizes[@]}"; do
  out="$RESULTS/n$n.txt"
  echo "== N = $n (output: $out)"
  {
    echo "$BENCH_COMMAND"
    echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ); serin $("$SERIN_BIN" --version | cut -d' ' -f2) ($SERIN_BIN); flagger $(basename "$(dirname "$(dirname "$(dirname "$FLAGGER_CRDS")")")"); $(nproc) CPUs"
    "$BENCH_CLIENT" --kubeconfig "$KUBECONFIG" --controller-kubeconfig "$CONTROLLER_KUBECONFIG" \
      --flagger "$FLAGGER_BIN" --serin "$SERIN_BIN" --canaries "$n" --work "$WORK" \
      ${BENCH_ARGS:-} 2>&1
  } | tee "$out"
done
