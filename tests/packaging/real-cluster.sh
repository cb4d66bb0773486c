#!/usr/bin/env bash
# The packaging on a real Kubernetes API server (scripts/real-cluster.sh: kube-apiserver with RBAC
# enforced, etcd, kube-controller-manager):
#   1. helm install the three charts with the seeds' values; kubectl apply deploy/rbac and
#      kustomize/istio; the other kustomize builds and the GitOps apps pass a server-side dry run;
#   2. every rule of the chart's ClusterRole is granted to its ServiceAccount and chosen
#      neighbours are not (kubectl auth can-i --as);
#   3. `serin controller` runs as that ServiceAccount (a token, no admin rights), with leader
#      election: it becomes ready and initialises a Canary (primary Deployment and HPA, status,
#      events) without a single "forbidden".
#
#   tests/packaging/real-cluster.sh      (SERIN_REAL_CLUSTER_SCRIPT overrides scripts/real-cluster.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

if [[ -z "${SERIN_PACKAGING_INSIDE:-}" ]]; then
  script=${SERIN_REAL_CLUSTER_SCRIPT:-$root/scripts/real-cluster.sh}
  if [[ ! -x $script ]]; then
    echo "no real control plane script at $script (SERIN_REAL_CLUSTER_SCRIPT sets another)" >&2
    exit 1
  fi
  exec "$script" env SERIN_PACKAGING_INSIDE=1 "$0" "$@"
fi

: "${KUBECONFIG:?KUBECONFIG is set by scripts/real-cluster.sh}"
helm=$(tests/packaging/helm.sh)
bin=${SERIN_BINARY:-$root/target/debug/serin}
[[ -x $bin ]] || cargo build -p serin --bin serin --locked
tmp=$(mktemp -d)
controller_pid=""
cleanup() {
  if [[ -n $controller_pid ]]; then
    kill -TERM "$controller_pid" 2>/dev/null || true
    wait "$controller_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
export HELM_CACHE_HOME=$tmp/cache HELM_CONFIG_HOME=$tmp/config HELM_DATA_HOME=$tmp/data

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
check() { # DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@" >"$tmp/out" 2>&1; then pass "$what"; else fail "$what"; sed 's/^/     /' "$tmp/out" | head -20; fi
}

echo "== $(kubectl version -o json | jq -r '"server " + .serverVersion.gitVersion')"

# --- 1. install ------------------------------------------------------------------------------------
check "helm install flagger charts/serin (seed values)" \
  "$helm" upgrade -i flagger charts/serin --namespace=istio-system --create-namespace \
  --set crd.create=false --set meshProvider=istio --set metricsServer=http://prometheus:9090 \
  --set istio.kubeconfig.secretName=istio-kubeconfig --set istio.kubeconfig.key=kubeconfig \
  --set slack.url=https://hooks.slack.com/services/YOUR/SLACK/WEBHOOK --set slack.channel=general \
  --set slack.user=flagger
check "CRDs from charts/serin/crds are established" \
  kubectl wait --for=condition=Established --timeout=60s \
  crd/canaries.flagger.app crd/metrictemplates.flagger.app crd/alertproviders.flagger.app
check "deploy/flagger, serviceaccount/flagger and the ClusterRole exist" \
  kubectl -n istio-system get deployment/flagger serviceaccount/flagger clusterrole/flagger clusterrolebinding/flagger
check "helm install flagger-loadtester charts/loadtester" \
  "$helm" upgrade -i flagger-loadtester charts/loadtester --namespace=loadtest --create-namespace
check "helm install flagger-grafana charts/grafana (seed values)" \
  "$helm" upgrade -i flagger-grafana charts/grafana --namespace=istio-system \
  --set url=http://prometheus.istio-system:9090 --set user=admin --set password=change-me
check "helm install serin charts/serin (namespaced RBAC)" \
  "$helm" upgrade -i serin charts/serin --namespace=apps --create-namespace \
  --set namespace=apps --set rbac.scope=namespace --set leaderElection.enabled=true --set leaderElection.replicaCount=2
check "kubectl apply -f deploy/rbac/" kubectl apply -f deploy/rbac/
# deploy/rbac and kustomize/base/serin are alternatives: both name their ClusterRoleBinding serin.
check "deploy/rbac's serin ServiceAccount may patch deployments" \
  test "$(kubectl auth can-i patch deployments.apps --as=system:serviceaccount:serin-system:serin -n prod)" = yes
check "kubectl apply -k kustomize/istio (server-side)" kubectl apply --server-side -k kustomize/istio
kubectl create namespace prod >/dev/null 2>&1 || true
kubectl create namespace test >/dev/null 2>&1 || true
kubectl apply --server-side -f examples/istio-crds.yaml >/dev/null
kubectl wait --for=condition=Established --timeout=60s -f examples/istio-crds.yaml >/dev/null
for dir in kustomize/tester kustomize/podinfo kustomize/kubernetes examples/gitops/flux/apps; do
  check "kubectl apply --dry-run=server -k $dir" kubectl apply --server-side --dry-run=server -k "$dir"
done

# --- 2. RBAC as the API server enforces it ---------------------------------------------------------
can() { # SA NAMESPACE VERB RESOURCE [can-i flags...]
  local sa=$1 ns=$2
  shift 2
  kubectl auth can-i "$@" --as="system:serviceaccount:$sa" -n "$ns" 2>/dev/null
}
# A SubjectAccessReview per (group, resource, verb) of the chart's ClusterRole, as the API server
# decides it for the ServiceAccount (kubectl auth can-i cannot name the groups of CRDs that are
# not installed).
allowed() { # NAMESPACE GROUP RESOURCE[/SUBRESOURCE] VERB
  local ns=$1 group=$2 resource=${3%%/*} sub="" verb=$4
  [[ $3 == */* ]] && sub=${3#*/}
  [[ $resource == "*" ]] && resource=queue_depth
  jq -n --arg ns "$ns" --arg g "$group" --arg r "$resource" --arg s "$sub" --arg v "$verb" '{
    apiVersion: "authorization.k8s.io/v1", kind: "SubjectAccessReview",
    spec: {user: "system:serviceaccount:istio-system:flagger",
           groups: ["system:serviceaccounts", "system:serviceaccounts:istio-system", "system:authenticated"],
           resourceAttributes: {namespace: $ns, group: $g, resource: $r, subresource: $s, verb: $v}}}' \
    | kubectl create -f - -o jsonpath='{.status.allowed}'
}
granted=0
not_held=()
while IFS='|' read -r group resource verb; do
  if [[ $(allowed prod "$group" "$resource" "$verb") == true ]]; then
    granted=$((granted + 1))
  else
    not_held+=("$verb $resource.$group")
  fi
done < <(kubectl get clusterrole flagger -o json \
  | jq -r '.rules[] | select(.resources) | .apiGroups[] as $g | .resources[] as $r | .verbs[] as $v | "\($g)|\($r)|\($v)"')
if [[ ${#not_held[@]} -eq 0 && $granted -gt 80 ]]; then
  pass "the chart's ServiceAccount holds all $granted (group, resource, verb) grants of its ClusterRole"
else
  fail "grants: $granted held; not held: ${not_held[*]:-none}"
fi
check "a SubjectAccessReview denies what the role lacks (update deployments)" test "$(allowed prod apps deployments update)" != true
check "it may get /version" test "$(kubectl auth can-i get /version --as=system:serviceaccount:istio-system:flagger)" = yes
for denied in "delete deployments.apps" "update deployments.apps" "delete secrets" "update secrets" \
  "delete canaries.flagger.app" "create clusterroles.rbac.authorization.k8s.io" "list pods" "get nodes" \
  "delete services" "delete virtualservices.networking.istio.io" "create metrictemplates.flagger.app"; do
  read -r verb res <<<"$denied"
  check "it may not $denied" test "$(can istio-system:flagger prod "$verb" "$res")" = no
done
check "kustomize/istio's serin ServiceAccount may patch deployments" test "$(can istio-system:serin prod patch deployments.apps)" = yes
check "the namespaced release may create deployments in apps" test "$(can apps:serin apps create deployments.apps)" = yes
check "the namespaced release may not read secrets in prod" test "$(can apps:serin prod get secrets)" = no

# --- 3. the controller as the ServiceAccount --------------------------------------------------------
server=$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')
kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d >"$tmp/ca.crt"
token=$(kubectl -n istio-system create token flagger --duration=10m)
KUBECONFIG=$tmp/sa.kubeconfig kubectl config set-cluster real --server="$server" --certificate-authority="$tmp/ca.crt" --embed-certs >/dev/null
KUBECONFIG=$tmp/sa.kubeconfig kubectl config set-credentials flagger --token="$token" >/dev/null
KUBECONFIG=$tmp/sa.kubeconfig kubectl config set-context real --cluster=real --user=flagger >/dev/null
KUBECONFIG=$tmp/sa.kubeconfig kubectl config use-context real >/dev/null
check "the token kubeconfig is not an admin" test "$(KUBECONFIG=$tmp/sa.kubeconfig kubectl auth can-i delete namespaces)" = no

kubectl apply -k kustomize/podinfo >/dev/null
kubectl apply -f examples/podinfo/canary.yaml >/dev/null
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" controller -kubeconfig="$tmp/sa.kubeconfig" -port="$port" -log-level=debug \
  -metrics-server=http://127.0.0.1:9 -enable-leader-election=true -leader-election-namespace=istio-system \
  >"$tmp/controller.log" 2>&1 &
controller_pid=$!

wait_for() { # SECONDS COMMAND...
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    kill -0 "$controller_pid" 2>/dev/null || return 1
    sleep 0.5
  done
}
check "serin controller as the ServiceAccount becomes ready (/readyz)" wait_for 60 curl -sf "http://127.0.0.1:$port/readyz"
check "it holds the leader election Lease" wait_for 30 kubectl -n istio-system get lease flagger-leader-election
check "it creates podinfo-primary" wait_for 60 kubectl -n test get deployment podinfo-primary
check "it writes the Canary's status" wait_for 30 test -n "$(kubectl -n test get canary podinfo -o jsonpath='{.status.phase}')"
check "it records events" wait_for 30 test -n "$(kubectl -n test get events --field-selector involvedObject.kind=Canary -o name)"
kill -TERM "$controller_pid" 2>/dev/null || true
wait "$controller_pid" 2>/dev/null || true
controller_pid=""
if grep -qi 'forbidden' "$tmp/controller.log"; then
  fail "the controller's log has forbidden errors"
  grep -i 'forbidden' "$tmp/controller.log" | head -10
else
  # Without a kubelet the primary never becomes ready: the Canary stays Initializing.
  pass "no forbidden error in $(wc -l <"$tmp/controller.log") log lines (Canary: $(kubectl -n test get canary podinfo -o jsonpath='{.status.phase}: {.status.conditions[0].message}'))"
fi

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
