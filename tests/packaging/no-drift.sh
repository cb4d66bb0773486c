#!/usr/bin/env bash
# The GitOps no-drift test on a real Kubernetes API server (scripts/real-cluster.sh):
#   1. the Flux example's backend (examples/gitops/flux/apps/backend: Deployment without
#      spec.replicas, HPA, Canary) is applied server-side with Flux's field manager
#      (kubectl apply --server-side --field-manager=kustomize-controller); the overlay written
#      here only shortens the analysis and points its webhooks at a local receiver (the example's
#      Prometheus and load tester do not exist here);
#   2. `serin controller` (as deploy/rbac's ServiceAccount, RBAC enforced) and
#      `serin simulate-workloads` initialise the Canary; a new image tag "in Git" is applied the
#      same way and the release runs to Succeeded;
#   3. the same manifests are applied again: what kustomize-controller owns (its managedFields)
#      is the same set before and after the release, `kubectl diff --server-side` is empty, a
#      server-side dry run changes nothing, and the real re-apply meets no conflict and writes
#      nothing; a control write by another field manager shows that these checks see drift;
#   4. the spec.replicas rule: replicas set in Git, then what the API server and Serin do.
#
#   tests/packaging/no-drift.sh      (SERIN_REAL_CLUSTER_SCRIPT overrides scripts/real-cluster.sh)
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD

if [[ -z "${SERIN_NO_DRIFT_INSIDE:-}" ]]; then
  script=${SERIN_REAL_CLUSTER_SCRIPT:-$root/scripts/real-cluster.sh}
  if [[ ! -x $script ]]; then
    echo "no real control plane script at $script (SERIN_REAL_CLUSTER_SCRIPT sets another)" >&2
    exit 1
  fi
  exec "$script" env SERIN_NO_DRIFT_INSIDE=1 "$0" "$@"
fi

: "${KUBECONFIG:?KUBECONFIG is set by scripts/real-cluster.sh}"
bin=${SERIN_BINARY:-$root/target/debug/serin}
[[ -x $bin ]] || cargo build -p serin --bin serin --locked
tmp=$(mktemp -d)
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
check() { # DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@" >"$tmp/out" 2>&1; then pass "$what"; else fail "$what"; sed 's/^/     /' "$tmp/out" | head -20; fi
}
wait_for() { # SECONDS COMMAND...
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null || { echo "process $pid exited"; return 1; }; done
    sleep 0.5
  done
}
ns=prod
k() { kubectl -n "$ns" "$@"; }
phase() { k get canary backend -o jsonpath='{.status.phase}'; }
phase_is() { [[ $(phase) == "$1" ]]; }

echo "== $(kubectl version -o json | jq -r '"server " + .serverVersion.gitVersion')"

# --- the cluster: CRDs, namespace, Serin's RBAC -----------------------------------------------------
kubectl apply --server-side -f deploy/crds/crds.yaml -f examples/istio-crds.yaml >/dev/null
kubectl wait --for=condition=Established --timeout=60s -f deploy/crds/crds.yaml -f examples/istio-crds.yaml >/dev/null
kubectl apply --server-side --field-manager=kustomize-controller -f examples/gitops/flux/apps/namespace.yaml >/dev/null
kubectl apply -f deploy/rbac/ >/dev/null

# --- a webhook receiver on 127.0.0.1 (stands in for the load tester) ---------------------------------
cat >"$tmp/receiver.py" <<'EOF'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(sys.argv[2], "a") as f:
            f.write(self.path + "\n")
        self.send_response(200)
        self.end_headers()
    def log_message(self, *args):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
with open(sys.argv[1], "w") as f:
    f.write(str(s.server_address[1]))
s.serve_forever()
EOF
touch "$tmp/hooks.log"
python3 "$tmp/receiver.py" "$tmp/hook.port" "$tmp/hooks.log" &
pids+=($!)
wait_for 10 test -s "$tmp/hook.port" || { echo "the webhook receiver did not start"; exit 1; }
hook="http://127.0.0.1:$(cat "$tmp/hook.port")"

# --- "Git": the example's backend with a tag and, optionally, replicas -------------------------------
git_dir=$tmp/git
mkdir -p "$git_dir"
cp -r examples/gitops/flux/apps/backend "$git_dir/backend"
render_git() { # TAG [REPLICAS]
  cat >"$git_dir/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: $ns
resources:
  - backend
images:
  - name: ghcr.io/stefanprodan/podinfo
    newTag: "$1"
patches:
  - target: {kind: Canary, name: backend}
    patch: |
      - {op: replace, path: /spec/analysis/interval, value: 5s}
      - {op: replace, path: /spec/analysis/threshold, value: 2}
      - {op: replace, path: /spec/analysis/stepWeight, value: 25}
      - {op: replace, path: /spec/analysis/maxWeight, value: 50}
      - {op: remove, path: /spec/analysis/metrics}
      - op: replace
        path: /spec/analysis/webhooks
        value:
          - {name: conformance-test, type: pre-rollout, url: "$hook/pre-rollout", timeout: 5s}
          - {name: load-test, url: "$hook/rollout", timeout: 5s}
EOF
  if [[ -n ${2:-} ]]; then
    cat >>"$git_dir/kustomization.yaml" <<EOF
  - target: {kind: Deployment, name: backend}
    patch: |
      - {op: add, path: /spec/replicas, value: $2}
EOF
  fi
}
flux_apply() { kubectl apply --server-side --field-manager=kustomize-controller -k "$git_dir" "$@"; }
objects=(deployment/backend horizontalpodautoscaler.autoscaling/backend canary.flagger.app/backend)
# The fields kustomize-controller owns on each object (its Apply entry's fieldsV1), one line each.
owned() {
  local o
  for o in "${objects[@]}"; do
    k get "$o" -o json --show-managed-fields | jq -c --arg o "$o" \
      '{($o): [.metadata.managedFields[] | select(.manager == "kustomize-controller" and .operation == "Apply") | .fieldsV1]}'
  done
}
owned_times() {
  local o
  for o in "${objects[@]}"; do
    k get "$o" -o json --show-managed-fields | jq -r --arg o "$o" \
      '.metadata.managedFields[] | select(.manager == "kustomize-controller") | "\($o) \(.time)"'
  done
}
leaves() { jq -s '[.[] | .[][] | paths(type == "object" and length == 0)] | length'; }
generations() {
  local o
  for o in "${objects[@]}"; do k get "$o" -o jsonpath="$o {.metadata.generation}{\"\\n\"}"; done
}
image() { k get deployment "$1" -o jsonpath='{.spec.template.spec.containers[0].image}'; }
replicas() { k get deployment backend -o jsonpath='{.spec.replicas}'; }
# Who else writes these objects: manager, operation, subresource and the fields, per object.
managers() {
  local o
  for o in "${objects[@]}"; do
    k get "$o" -o json --show-managed-fields | jq -r --arg o "$o" '.metadata.managedFields[]
      | select(.manager != "kustomize-controller")
      | "\($o) \(.manager) \(.operation) \(.subresource // "-") \([.fieldsV1 | paths(type == "object" and length == 0) | map(ltrimstr("f:")) | join(".")] | join(" "))"'
  done
}

render_git 6.0.0
check "the Flux example's backend applies server-side as kustomize-controller" flux_apply
owned >"$tmp/owned.0"
echo "     kustomize-controller owns $(leaves <"$tmp/owned.0") fields on ${#objects[@]} objects"
check "kustomize-controller has one Apply entry on each of the ${#objects[@]} objects" \
  jq -se --argjson n "${#objects[@]}" 'length == $n and all(.[]; .[] | length == 1)' "$tmp/owned.0"
check "the Deployment in Git has no spec.replicas (the API server defaults it to 1)" test "$(replicas)" = 1

# --- Serin: the controller as deploy/rbac's ServiceAccount, and the workload simulator ---------------
server=$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')
kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d >"$tmp/ca.crt"
token=$(kubectl -n serin-system create token serin --duration=30m)
export_sa() { KUBECONFIG=$tmp/sa.kubeconfig kubectl config "$@" >/dev/null; }
export_sa set-cluster real --server="$server" --certificate-authority="$tmp/ca.crt" --embed-certs
export_sa set-credentials serin --token="$token"
export_sa set-context real --cluster=real --user=serin
export_sa use-context real
"$bin" simulate-workloads --kubeconfig "$KUBECONFIG" --namespace "$ns" --ready-delay-ms 300 >"$tmp/simulator.log" 2>&1 &
pids+=($!)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$bin" controller -kubeconfig="$tmp/sa.kubeconfig" -port="$port" -mesh-provider=istio \
  -metrics-server=http://127.0.0.1:9 >"$tmp/controller.log" 2>&1 &
pids+=($!)

check "the Canary is Initialized" wait_for 120 phase_is Initialized
check "Serin scaled the target to zero (spec.replicas 0)" test "$(replicas)" = 0
check "kustomize-controller's fields are unchanged by the initialisation" diff "$tmp/owned.0" <(owned)

# --- a release: a new tag in Git ---------------------------------------------------------------------
render_git 6.0.1
check "the new tag applies without a conflict" flux_apply
owned >"$tmp/owned.1"
started=$SECONDS
check "the release starts (Progressing)" wait_for 60 phase_is Progressing
check "the release ends Succeeded" wait_for 180 phase_is Succeeded
echo "     release: $((SECONDS - started)) s; webhooks received: $(sort "$tmp/hooks.log" | uniq -c | awk '{printf "%s %s; ", $2, $1}')"
check "backend-primary runs the new image" test "$(image backend-primary)" = ghcr.io/stefanprodan/podinfo:6.0.1
check "the pre-rollout and rollout webhooks were called" \
  bash -c "grep -qx /pre-rollout '$tmp/hooks.log' && grep -qx /rollout '$tmp/hooks.log'"
check "the target is scaled to zero again" test "$(replicas)" = 0
owned >"$tmp/owned.2"
owned_times >"$tmp/times.2"
generations >"$tmp/gen.2"
check "kustomize-controller's fields are the same set after the release" diff "$tmp/owned.1" "$tmp/owned.2"
check "the snapshots cover the ${#objects[@]} objects" \
  test "$(cat "$tmp/gen.2" "$tmp/times.2" | wc -l)" = $((2 * ${#objects[@]}))
managers >"$tmp/managers"
echo "     other field managers on the Git objects (manager operation subresource fields):"
sed 's/^/       /' "$tmp/managers"
check "Serin's merge patch owns the Deployment's spec.replicas" grep -qx 'deployment/backend serin Update - spec.replicas' "$tmp/managers"
check "Serin's own writes to the Git objects touch only Deployment spec.replicas, the Canary's status and finalizers" \
  test -z "$(awk '$2 == "serin" && $4 == "-" && !($1 == "deployment/backend" && $5 == "spec.replicas" && NF == 5) && !($1 ~ /^canary/ && $0 ~ /finalizers/)' "$tmp/managers")"

# --- re-apply the same manifests ---------------------------------------------------------------------
check "kubectl diff --server-side (as kustomize-controller) is empty" \
  kubectl diff --server-side --field-manager=kustomize-controller -k "$git_dir"
dry_run_unchanged() { # [APPLY FLAGS...]
  # A dry run returns the object as the API server would store it (generation bumped on a spec
  # change; the resourceVersion stays the live one either way), so compare what Git sets.
  flux_apply --dry-run=server -o json "$@" >"$tmp/dry.json" || return 1
  [[ -s $tmp/dry.json ]] || { echo "the dry run printed nothing"; return 1; }
  local o
  for o in "${objects[@]}"; do
    k get "$o" -o json >"$tmp/live.json"
    jq -e --slurpfile live "$tmp/live.json" \
      '[.items[] | select(.kind == $live[0].kind and .metadata.name == $live[0].metadata.name)] | length == 1 and
       (.[0] | {g: .metadata.generation, l: .metadata.labels, a: .metadata.annotations, s: .spec})
         == ($live[0] | {g: .metadata.generation, l: .metadata.labels, a: .metadata.annotations, s: .spec})' \
      "$tmp/dry.json" >/dev/null || { echo "$o: the dry run would change it"; return 1; }
  done
}
check "a server-side dry-run apply changes none of the three objects (generation, labels, annotations, spec)" dry_run_unchanged
check "the re-apply (no --force-conflicts) meets no conflict" flux_apply
check "the re-apply changed no generation" diff "$tmp/gen.2" <(generations)
check "the re-apply was a no-op (kustomize-controller's managedFields times unchanged)" diff "$tmp/times.2" <(owned_times)
check "kustomize-controller's fields are still the same set" diff "$tmp/owned.2" <(owned)
check "the Canary stays Succeeded" phase_is Succeeded

# --- control: the same checks see a change to a field Git owns --------------------------------------
kubectl_diff_differs() {
  local rc=0
  kubectl diff --server-side --force-conflicts --field-manager=kustomize-controller -k "$git_dir" >"$tmp/diff" 2>&1 || rc=$?
  [[ $rc -eq 1 ]] # 1: differences; 0: none; above: an error
}
owned_differs() { ! diff -q "$tmp/owned.2" <(owned) >/dev/null; }
dry_run_writes() { flux_apply --dry-run=server -o json --force-conflicts >/dev/null && ! dry_run_unchanged --force-conflicts; }
k patch deployment backend --type=merge --field-manager=intruder -p '{"spec":{"minReadySeconds":7}}' >/dev/null
check "control: kubectl diff reports another writer's change to minReadySeconds" kubectl_diff_differs
check "control: kustomize-controller's field set no longer matches" owned_differs
check "control: the forced dry-run apply would write the Deployment" dry_run_writes
check "control: the plain re-apply conflicts with the other writer" bash -c "! kubectl apply --server-side --field-manager=kustomize-controller -k '$git_dir' >/dev/null 2>&1"
check "control: Flux's forced apply restores it" flux_apply --force-conflicts
# The restore is a new generation: the workload simulator's status write for it (observedGeneration)
# must not land between kubectl diff's read and its dry run (it did once in CI).
status_caught_up() {
  local observed generation
  read -r observed generation < <(k get deployment backend -o jsonpath='{.status.observedGeneration} {.metadata.generation}')
  [[ -n $generation && $observed == "$generation" ]]
}
wait_for 30 status_caught_up || echo "     the Deployment's status did not catch up with its generation"
check "control: kubectl diff is empty again" kubectl diff --server-side --field-manager=kustomize-controller -k "$git_dir"

# --- the spec.replicas rule: replicas in Git ---------------------------------------------------------
render_git 6.0.1 2
if flux_apply >"$tmp/conflict" 2>&1; then
  fail "replicas in Git applied without --force-conflicts (expected a conflict with Serin)"
else
  check "replicas in Git conflicts with Serin's spec.replicas" grep -q 'conflict with "serin"' "$tmp/conflict"
  echo "     $(grep -m1 -i conflict "$tmp/conflict")"
fi
check "with --force-conflicts (as Flux applies) kubectl takes spec.replicas" flux_apply --force-conflicts
check "the target runs 2 replicas beside the primary" test "$(replicas)" = 2
sleep 12 # two analysis intervals: does Serin scale it back?
echo "     two intervals later: spec.replicas $(replicas), Canary $(phase), primary replicas $(k get deployment backend-primary -o jsonpath='{.spec.replicas}')"
check "Serin leaves the target at 2 until the next release" test "$(replicas)" = 2
render_git 6.0.2 2
check "a release with replicas in Git: the new tag applies (no conflict: kustomize-controller owns replicas)" flux_apply
check "it starts (Progressing)" wait_for 60 phase_is Progressing
check "it ends Succeeded" wait_for 180 phase_is Succeeded
echo "     after the release: spec.replicas $(replicas); owner of spec.replicas: $(k get deployment backend -o json --show-managed-fields | jq -r '[.metadata.managedFields[] | select(.fieldsV1["f:spec"]["f:replicas"]) | .manager] | join(",")')"
check "Serin scaled the target to zero after the promotion" test "$(replicas)" = 0
# Without --force-conflicts kubectl diff stops at the same conflict; Flux forces.
if kubectl diff --server-side --force-conflicts --field-manager=kustomize-controller -k "$git_dir" >"$tmp/diff" 2>&1; then
  fail "kubectl diff shows no drift with replicas in Git"
else
  check "kubectl diff --server-side --force-conflicts shows the drift: spec.replicas 0 -> 2" \
    bash -c "grep -qE '^-[[:space:]]+replicas: 0\$' '$tmp/diff' && grep -qE '^\+[[:space:]]+replicas: 2\$' '$tmp/diff'"
  grep -E '^[-+][[:space:]]+(replicas|image):' "$tmp/diff" | sed 's/^/     /' || sed 's/^/     /' "$tmp/diff" | head -20
fi
reapply_conflicts() { ! flux_apply >"$tmp/conflict" 2>&1 && grep -q 'conflict with "serin"' "$tmp/conflict"; }
check "the next apply conflicts with Serin again (Flux forces spec.replicas back to 2)" reapply_conflicts

if grep -qi 'forbidden' "$tmp/controller.log"; then
  fail "the controller's log has forbidden errors"
  grep -i 'forbidden' "$tmp/controller.log" | head -5
else
  pass "no forbidden error in $(wc -l <"$tmp/controller.log") controller log lines"
fi
if ((failed > 0)); then
  for log in controller simulator; do
    echo "--- last lines of the $log's log"
    tail -n 15 "$tmp/$log.log"
  done
fi
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
