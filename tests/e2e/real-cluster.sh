#!/usr/bin/env bash
# Serin's end-to-end suite on a real Kubernetes control plane (scripts/real-cluster.sh):
#
#  1. the seeds' kubectl steps: `serin crds` and the Istio CRDs applied (structural schemas,
#     both flagger.app versions served, printer columns), namespaces, a secret from a file,
#     labels, the podinfo Deployment and its autoscaling/v2 HPA, the seeds' Canaries
#     (v1beta1 and v1alpha3 with canaryAnalysis), MetricTemplates and AlertProviders;
#     `serin simulate-workloads` and `serin controller` (as a ServiceAccount with the RBAC of
#     deploy/rbac/) initialise the podinfo Canary; `kubectl set image`
#     starts a new revision; `kubectl get canaries --all-namespaces`, `describe canary` and
#     `get events` show what Serin did;
#  2. the Rust controller scenarios (crates/serin/tests/controller) with SERIN_E2E_KUBECONFIG.
#
# Usage: tests/e2e/real-cluster.sh [--no-rust]   (SERIN_BIN=path skips building serin)
# Ends with a summary line "N passed, M failed".
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SEEDS="$ROOT/crates/serin/tests/fixtures/seeds"
FLAGGER="$ROOT/crates/serin/tests/fixtures/flagger"

if [ "${1:-}" != "--inside" ]; then
  if [ -z "${SERIN_BIN:-}" ]; then
    echo "== building serin"
    (cd "$ROOT" && cargo build -p serin --bin serin --locked --quiet)
    export SERIN_BIN="$ROOT/target/debug/serin"
  fi
  exec "$ROOT/scripts/real-cluster.sh" "$0" --inside "$@"
fi
shift
RUST=true
[ "${1:-}" = "--no-rust" ] && RUST=false

: "${KUBECONFIG:?run through scripts/real-cluster.sh}"
command -v kubectl >/dev/null 2>&1 || { echo "kubectl is not installed"; exit 1; }
WORK="$(mktemp -d "${TMPDIR:-/tmp}/serin-e2e.XXXXXX")"
CHILDREN=()
finish() {
  for pid in "${CHILDREN[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${CHILDREN[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap finish EXIT

PASSED=0
FAILED=0
FAILURES=()
# check NAME COMMAND...: runs COMMAND, prints its output indented, counts the result.
check() {
  local name="$1"
  shift
  local out rc=0
  out="$("$@" 2>&1)" || rc=$?
  if [ $rc -eq 0 ]; then
    PASSED=$((PASSED + 1))
    echo "ok    $name"
  else
    FAILED=$((FAILED + 1))
    FAILURES+=("$name")
    echo "FAIL  $name (exit $rc)"
  fi
  [ -n "$out" ] && sed 's/^/      /' <<<"$out" | head -n 40
  return 0
}
# Retries a command for up to $1 seconds (things that become true shortly).
eventually() {
  local timeout="$1"
  shift
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 1
  done
}
contains() { grep -q -- "$1" <<<"$("${@:2}" 2>&1)"; }

echo "== the control plane"
check "kubectl version reports the server" kubectl version
check "kubectl get ns" kubectl get ns

echo "== CRDs"
check "serin crds | kubectl apply -f -" bash -c '"$SERIN_BIN" crds | kubectl apply -f -'
check "Istio CRDs (examples/istio-crds.yaml)" kubectl apply -f "$ROOT/examples/istio-crds.yaml"
check "CRDs established" kubectl wait --for condition=established --timeout=60s \
  crd/canaries.flagger.app crd/metrictemplates.flagger.app crd/alertproviders.flagger.app \
  crd/virtualservices.networking.istio.io crd/destinationrules.networking.istio.io
# A non-structural schema is accepted but flagged with the NonStructuralSchema condition.
check "schemas are structural" bash -c '! kubectl get crd -o jsonpath="{range .items[*]}{.metadata.name} {.status.conditions[*].type}{\"\n\"}{end}" | grep NonStructuralSchema'
check "flagger.app/v1beta1 served" contains canaries kubectl get --raw /apis/flagger.app/v1beta1
check "flagger.app/v1alpha3 served" contains canaries kubectl get --raw /apis/flagger.app/v1alpha3
check "autoscaling versions served (v2beta1 and v2beta2 were removed in 1.25 and 1.26)" \
  bash -c 'kubectl api-versions | grep "^autoscaling/"'

echo "== the seeds' kubectl steps"
check "kubectl create ns test" kubectl create ns test
for ns in istio-system prod flagger; do
  check "kubectl create ns $ns" kubectl create ns "$ns"
done
check "kubectl label namespace test istio-injection=enabled" kubectl label namespace test istio-injection=enabled
cp "$KUBECONFIG" "$WORK/kubeconfig"
check "kubectl create secret generic --from-file" \
  bash -c "cd '$WORK' && kubectl -n istio-system create secret generic istio-kubeconfig --from-file kubeconfig"
check "kubectl label secret" kubectl -n istio-system label secret istio-kubeconfig istio/multiCluster=true
check "podinfo Deployment and autoscaling/v2 HPA" kubectl apply -f "$ROOT/examples/podinfo/deployment.yaml"
check "MetricTemplates (seeds)" kubectl apply -f "$SEEDS/000-metric-templates.yaml" -f "$SEEDS/001-not-found-percentage.yaml"
check "MetricTemplates and AlertProviders (Flagger's docs)" \
  kubectl apply -f "$FLAGGER/metric-templates.yaml" -f "$FLAGGER/alert-providers.yaml"
check "Canary v1alpha3 with canaryAnalysis" kubectl apply -f "$FLAGGER/canary-legacy-v1alpha3.yaml"
# No conversion webhook: the object is served under both versions as stored, and the
# schema keeps canaryAnalysis (a field the schema did not know would be pruned).
check "Canary v1alpha3 read back as v1beta1 keeps canaryAnalysis" \
  contains '"canaryAnalysis"' kubectl get canaries.v1beta1.flagger.app legacy -n test -o json
check "Canaries (seeds 000, 002)" kubectl apply -f "$SEEDS/000-frontend-canary.yaml" -f "$SEEDS/002-podinfo-canary.yaml"
# Seed 001's podinfo Canary (autoscalerRef autoscaling/v2beta2) is the one Serin runs below.
check "Canary (seed 001, autoscalerRef autoscaling/v2beta2)" kubectl apply -f "$SEEDS/001-podinfo-canary.yaml"

echo "== serin controller and simulate-workloads on the control plane"
# The controller's identity: a ServiceAccount bound only to the e2e ClusterRole.
check "Serin's RBAC" kubectl apply -f "$ROOT/deploy/rbac/"
token="$(kubectl -n serin-system create token serin --duration=1h)"
server="$(kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.server}')"
kubectl config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' \
  | base64 -d >"$WORK/ca.crt"
SA_KUBECONFIG="$WORK/serin.kubeconfig"
KUBECONFIG="$SA_KUBECONFIG" kubectl config set-cluster real --server="$server" \
  --certificate-authority="$WORK/ca.crt" --embed-certs >/dev/null
KUBECONFIG="$SA_KUBECONFIG" kubectl config set-credentials serin --token="$token" >/dev/null
KUBECONFIG="$SA_KUBECONFIG" kubectl config set-context serin --cluster=real --user=serin >/dev/null
KUBECONFIG="$SA_KUBECONFIG" kubectl config use-context serin >/dev/null
check "RBAC: the ServiceAccount may list Canaries and may not create Pods" \
  bash -c "KUBECONFIG='$SA_KUBECONFIG' kubectl auth can-i list canaries.flagger.app --all-namespaces && ! KUBECONFIG='$SA_KUBECONFIG' kubectl auth can-i create pods -n test"

"$SERIN_BIN" simulate-workloads --kubeconfig "$KUBECONFIG" --ready-delay-ms 300 \
  >"$WORK/simulator.log" 2>&1 &
CHILDREN+=($!)
"$SERIN_BIN" controller --kubeconfig "$SA_KUBECONFIG" --metrics-server=http://127.0.0.1:9 \
  --port=0 --min-analysis-interval=1s --log-level=info >"$WORK/controller.log" 2>&1 &
CHILDREN+=($!)

phase() { kubectl -n test get canary podinfo -o jsonpath='{.status.phase}'; }
check "podinfo Deployment ready (simulated status)" \
  kubectl -n test rollout status deployment/podinfo --timeout=60s
check "Canary podinfo Initialized" eventually 90 bash -c '[ "$(kubectl -n test get canary podinfo -o jsonpath={.status.phase})" = Initialized ]'
check "primary Deployment ready" kubectl -n test rollout status deployment/podinfo-primary --timeout=60s
check "primary HPA (autoscaling/v2) created from the v2beta2 autoscalerRef" \
  kubectl -n test get hpa podinfo-primary -o jsonpath='{.apiVersion} {.spec.scaleTargetRef.name}{"\n"}'
check "kubectl -n test set image" kubectl -n test set image deployment/podinfo podinfod=stefanprodan/podinfo:3.1.1
check "new revision detected" eventually 60 contains "New revision detected! Scaling up podinfo.test" \
  kubectl -n test get events
check "kubectl get canaries --all-namespaces" kubectl get canaries --all-namespaces
check "printer columns (STATUS, WEIGHT, LASTTRANSITIONTIME)" \
  bash -c 'kubectl get canaries --all-namespaces | head -1 | grep -E "STATUS +WEIGHT +LASTTRANSITIONTIME"'
check "kubectl describe canary" contains "Initialization done! podinfo.test" kubectl -n test describe canary/podinfo
check "kubectl get events" contains "Synced" kubectl get events -n test
check "no permission errors in the controller log" bash -c "! grep -i 'forbidden' '$WORK/controller.log'"
for pid in "${CHILDREN[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
for pid in "${CHILDREN[@]}"; do wait "$pid" 2>/dev/null || true; done
CHILDREN=()
# The Rust scenarios make the namespace `test` anew; its Canaries' finalizers have no
# controller left to remove them.
kubectl delete ns test --wait=false >/dev/null

RUST_SUMMARY="(skipped)"
if $RUST; then
  echo "== the controller scenarios (cargo test --test controller) on the control plane"
  rc=0
  (cd "$ROOT" && SERIN_E2E_KUBECONFIG="$KUBECONFIG" cargo test -p serin --test controller --locked \
    -- --test-threads=1 --nocapture 2>&1) | tee "$WORK/cargo.log" || rc=$?
  RUST_SUMMARY="$(grep '^test result:' "$WORK/cargo.log" | tail -1 || true)"
  if [ $rc -eq 0 ] && grep -q '^test result: ok' "$WORK/cargo.log"; then
    PASSED=$((PASSED + 1))
  else
    FAILED=$((FAILED + 1))
    FAILURES+=("cargo test --test controller")
  fi
fi

echo
echo "== summary"
echo "kubectl checks and the Rust suite: ${#FAILURES[@]} failing"
for f in "${FAILURES[@]}"; do echo "  failed: $f"; done
echo "Rust scenarios: $RUST_SUMMARY"
if $RUST; then
  grep -ao 'skipped on the real control plane: .*' "$WORK/cargo.log" | sed 's/^/  /' || true
fi
echo "real-cluster: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
