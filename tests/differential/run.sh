#!/usr/bin/env bash
# The differential suite: Flagger and Serin on the same real control plane
# (scripts/real-cluster.sh), each in its own namespace, with the same manifests and the same
# workload simulator (`serin simulate-workloads`). For every scenario under
# tests/differential/scenarios/ it records, for both, the sequence of Canary status values
# (phase, canaryWeight, iterations, failedChecks), the sequence of distinct Kubernetes Event
# texts and the generated objects (after initialisation and at the end), normalises
# namespaces, times, uids and cluster IPs, and diffs them.
#
# Usage: tests/differential/run.sh [SCENARIO...]     (default: every scenario)
#   SERIN_BIN=path    skips building serin
#   DIFF_KEEP=dir     keeps the recorded files (per scenario and controller) in dir
# Prints a table "scenario | identical / differences" and ends with "N passed, M failed".
# What is compared and how: docs/differential.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/tests/differential"

if [ "${1:-}" != "--inside" ]; then
  if [ -z "${SERIN_BIN:-}" ]; then
    echo "== building serin"
    (cd "$ROOT" && cargo build -p serin --bin serin --locked --quiet)
    export SERIN_BIN="$ROOT/target/debug/serin"
  fi
  echo "== building Flagger (tools/flagger)"
  FLAGGER_DIR="$("$ROOT/tools/flagger/build.sh")"
  FLAGGER_BIN="$FLAGGER_DIR/flagger"
  LOADTESTER_BIN="$FLAGGER_DIR/loadtester"
  FLAGGER_CRDS="$("$ROOT/tools/flagger/build.sh" --crds)"
  KCP_HELPER="$("$ROOT/scripts/real-cluster.sh" --build)/kcp-helper"
  export FLAGGER_BIN LOADTESTER_BIN FLAGGER_CRDS KCP_HELPER
  exec "$ROOT/scripts/real-cluster.sh" "$0" --inside "$@"
fi
shift

: "${KUBECONFIG:?run through scripts/real-cluster.sh}"
command -v kubectl >/dev/null 2>&1 || { echo "kubectl is not installed"; exit 1; }
command -v jq >/dev/null 2>&1 || { echo "jq is not installed"; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/serin-diff.XXXXXX")"
CHILDREN=()
stop_children() {
  local pid
  for pid in "${CHILDREN[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${CHILDREN[@]}"; do wait "$pid" 2>/dev/null || true; done
  CHILDREN=()
}
SERVICES=()
finish() {
  stop_children
  local pid
  for pid in "${SERVICES[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${SERVICES[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "${DIFF_KEEP:-}" ]; then
    mkdir -p "$DIFF_KEEP"
    cp -r "$WORK"/. "$DIFF_KEEP"/
    echo "recorded files kept in $DIFF_KEEP"
  fi
  rm -rf "$WORK"
}
trap finish EXIT

# How long a scenario may take from the first apply to both Canaries being Succeeded/Failed.
SCENARIO_TIMEOUT="${DIFF_SCENARIO_TIMEOUT:-300}"
CONTROLLERS=(flagger serin)

echo "== CRDs: Flagger's own (artifacts/flagger/crd.yaml) and Istio's (examples/istio-crds.yaml)"
kubectl apply -f "$FLAGGER_CRDS" -f "$ROOT/examples/istio-crds.yaml" >/dev/null
kubectl wait --for condition=established --timeout=60s crd/canaries.flagger.app \
  crd/virtualservices.networking.istio.io crd/destinationrules.networking.istio.io >/dev/null

"$SERIN_BIN" simulate-workloads --kubeconfig "$KUBECONFIG" --ready-delay-ms 300 \
  >"$WORK/simulator.log" 2>&1 &
SERVICES+=($!)
# Flagger's load tester: the webhook receiver of both controllers (gates, rollback).
LOADTESTER_PORT="$("$KCP_HELPER" ports 1)"
LOADTESTER="http://127.0.0.1:$LOADTESTER_PORT"
"$LOADTESTER_BIN" -port "$LOADTESTER_PORT" -log-level info >"$WORK/loadtester.log" 2>&1 &
SERVICES+=($!)
for _ in $(seq 1 100); do
  curl -sf "$LOADTESTER/healthz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -sf "$LOADTESTER/healthz" >/dev/null 2>&1 \
  || { echo "Flagger's load tester did not start:"; tail -n 20 "$WORK/loadtester.log"; exit 1; }

# ------------------------------------------------------------------------------------------
# Recording

# Every write of the Canary in namespace $1 as a status line (phase canaryWeight iterations
# failedChecks), from a watch, so short phases are not missed; written to $2.
STATUS_JQ='.status | "\(.phase // "-") weight=\(.canaryWeight // 0) iterations=\(.iterations // 0) failedChecks=\(.failedChecks // 0)"'
watch_status() {
  kubectl -n "$1" get canaries -w -o json > >(jq --unbuffered -r "$STATUS_JQ" >"$2") 2>/dev/null &
  CHILDREN+=($!)
}
# The status lines without repeats; lines from before the controller's first status write
# ("-") are left out.
status_sequence() { grep -v '^- ' "$1" | uniq; }

# The Canary's event texts in namespace $1 in order of first occurrence, the namespace replaced
# by NS (events of other objects, such as the API server's cluster-IP repair, are left out).
events_now() {
  kubectl -n "$1" get events -o json | jq -r --arg ns "$1" '
    .items
    | sort_by(.firstTimestamp // .eventTime // .metadata.creationTimestamp, .metadata.creationTimestamp)
    | .[]
    | select(.involvedObject.kind == "Canary")
    | "\(.type) \(.reason) \(.involvedObject.kind)/\(.involvedObject.name) \(.message)"
    | gsub("\\.\($ns)"; ".NS") | gsub($ns; "NS")'
}

# Appends lines of stdin not yet in file $1, keeping their order.
append_new() {
  local line
  touch "$1"
  while IFS= read -r line; do
    grep -Fxq -- "$line" "$1" || printf '%s\n' "$line" >>"$1"
  done
}

# The generated objects of namespace $1 as one JSON object keyed by kind/name, normalised:
# no uid, resourceVersion, creationTimestamp, generation, managedFields, namespace, status or
# cluster IPs; the namespace name replaced by NS; the random `flagger-id` pod annotation (a new
# UUID on every rollout of the primary) replaced by UUID.
objects_now() {
  local ns="$1" obj
  for obj in deployment/podinfo-primary service/podinfo service/podinfo-canary \
    service/podinfo-primary destinationrule/podinfo-canary destinationrule/podinfo-primary \
    virtualservice/podinfo; do
    kubectl -n "$ns" get "$obj" -o json 2>/dev/null | jq -c --arg k "$obj" '{($k): .}' \
      || jq -nc --arg k "$obj" '{($k): null}'
  done | jq -S -s --arg ns "$ns" 'add | map_values(if . == null then null else
      del(.metadata.uid, .metadata.resourceVersion, .metadata.creationTimestamp,
          .metadata.generation, .metadata.managedFields, .metadata.namespace, .status,
          .spec.clusterIP, .spec.clusterIPs)
      | if .metadata.ownerReferences then .metadata.ownerReferences |= map(del(.uid)) else . end
      | if .spec.template.metadata.annotations["flagger-id"] then
          .spec.template.metadata.annotations["flagger-id"] = "UUID" else . end
      | walk(if type == "string" then gsub("\\.\($ns)"; ".NS") | gsub($ns; "NS") else . end)
    end)'
}

# The Canary's final status without its times; the revision hashes replaced by HASH (Serin's
# hashes are its own: docs/compatibility.md, "Revision hashes").
canary_status() {
  kubectl -n "$1" get canary podinfo -o json | jq -S '
    .status | del(.lastTransitionTime)
    | if .conditions then .conditions |= map(del(.lastUpdateTime, .lastTransitionTime)) else . end
    | if .lastAppliedSpec then .lastAppliedSpec = "HASH" else . end
    | if .lastPromotedSpec then .lastPromotedSpec = "HASH" else . end'
}

# Known, deliberate differences (each one listed in docs/compatibility.md), applied to both
# recordings only when the raw recordings differ: known_FILE < recording > normalised.
# Flagger's SetStatusPhase zeroes canaryWeight and iterations on Promoting; Serin keeps them.
known_status() { sed -E 's/^Promoting weight=[0-9]+ iterations=[0-9]+/Promoting weight=0 iterations=0/'; }
# client-go's event aggregation (Flagger) prefixes the 11th similar event and later ones.
known_events() { sed -E 's/^([^ ]+ [^ ]+ [^ ]+ )\(combined from similar events\): /\1/'; }
# Promotion: Flagger replaces the primary's annotations (dropping kubectl.kubernetes.io/ ones
# copied at initialisation); Serin leaves system annotations alone.
known_objects() {
  jq -S 'if .["deployment/podinfo-primary"].metadata.annotations then
      .["deployment/podinfo-primary"].metadata.annotations |=
        with_entries(select(.key | startswith("kubectl.kubernetes.io/") | not))
      | if .["deployment/podinfo-primary"].metadata.annotations == {} then
          del(.["deployment/podinfo-primary"].metadata.annotations) else . end
    else . end'
}
known_objects-initialized() { known_objects; }
known_objects-final() { known_objects; }
# Flagger writes an empty trackedConfigs map; Serin leaves the field out.
known_canary-status() { jq -S 'if .trackedConfigs == {} then del(.trackedConfigs) else . end'; }

start_controllers() {
  local fns="$1" sns="$2" dir="$3" port
  port="$("$KCP_HELPER" ports 1)"
  "$FLAGGER_BIN" -kubeconfig "$KUBECONFIG" -namespace "$fns" -mesh-provider istio \
    -metrics-server http://127.0.0.1:9 -port "$port" -log-level info \
    >"$dir/flagger.log" 2>&1 &
  CHILDREN+=($!)
  "$SERIN_BIN" controller --kubeconfig "$KUBECONFIG" --namespace "$sns" --mesh-provider istio \
    --metrics-server http://127.0.0.1:9 --port 0 --log-level info >"$dir/serin.log" 2>&1 &
  CHILDREN+=($!)
}

phase_of() { kubectl -n "$1" get canary podinfo -o jsonpath='{.status.phase}' 2>/dev/null || true; }

# run_scenario NAME: records both controllers' runs into $WORK/NAME/{flagger,serin}/.
run_scenario() {
  local name="$1" dir="$WORK/$1" c ns
  declare -A NS
  for c in "${CONTROLLERS[@]}"; do
    NS[$c]="diff-$name-$c"
    mkdir -p "$dir/$c"
    kubectl create namespace "${NS[$c]}" >/dev/null
    watch_status "${NS[$c]}" "$dir/$c/status.watch"
    kubectl -n "${NS[$c]}" apply -f "$HERE/scenarios/deployment.yaml" >/dev/null
    sed "s|LOADTESTER_URL|$LOADTESTER|g" "$HERE/scenarios/$name/canary.yaml" \
      | kubectl -n "${NS[$c]}" apply -f - >/dev/null
  done
  start_controllers "${NS[flagger]}" "${NS[serin]}" "$dir"

  local triggered=false deadline=$((SECONDS + SCENARIO_TIMEOUT)) done_all p line
  while :; do
    done_all=true
    for c in "${CONTROLLERS[@]}"; do
      ns="${NS[$c]}"
      events_now "$ns" | append_new "$dir/$c/events"
      p="$(phase_of "$ns")"
      if $triggered; then
        case "$p" in Succeeded | Failed) ;; *) done_all=false ;; esac
      else
        [ "$p" = Initialized ] || done_all=false
      fi
    done
    if $done_all; then
      if $triggered; then break; fi
      # Both initialised: record the generated objects, then start a new revision in both.
      for c in "${CONTROLLERS[@]}"; do
        objects_now "${NS[$c]}" >"$dir/$c/objects-initialized"
        if [ -f "$HERE/scenarios/$name/before-trigger.sh" ]; then
          NS="${NS[$c]}" LOADTESTER="$LOADTESTER" bash "$HERE/scenarios/$name/before-trigger.sh"
        fi
        kubectl -n "${NS[$c]}" set image deployment/podinfo podinfod=stefanprodan/podinfo:6.0.1 >/dev/null
      done
      triggered=true
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "  timed out after $SCENARIO_TIMEOUT s (flagger: $(phase_of "${NS[flagger]}"), serin: $(phase_of "${NS[serin]}"))"
      break
    fi
    sleep 1
  done
  # Events written right after the last phase change.
  sleep 3
  for c in "${CONTROLLERS[@]}"; do
    ns="${NS[$c]}"
    events_now "$ns" | append_new "$dir/$c/events"
    objects_now "$ns" >"$dir/$c/objects-final"
    canary_status "$ns" >"$dir/$c/canary-status"
  done
  stop_children
  sleep 0.5 # the watches' jq ends when kubectl's output closes
  for c in "${CONTROLLERS[@]}"; do
    status_sequence "$dir/$c/status.watch" >"$dir/$c/status"
  done
  for c in "${CONTROLLERS[@]}"; do
    kubectl delete namespace "${NS[$c]}" --wait=false >/dev/null
  done
}

# ------------------------------------------------------------------------------------------
# Comparing

PASSED=0
FAILED=0
TABLE=()
scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
  for d in "$HERE"/scenarios/*/; do scenarios+=("$(basename "$d")"); done
fi
for name in "${scenarios[@]}"; do
  [ -f "$HERE/scenarios/$name/canary.yaml" ] || { echo "no scenario $name"; exit 2; }
  echo "== scenario $name"
  started=$SECONDS
  run_scenario "$name"
  differing=()
  known=()
  for f in status events objects-initialized objects-final canary-status; do
    a="$WORK/$name/flagger/$f" b="$WORK/$name/serin/$f"
    cmp -s "$a" "$b" && continue
    "known_$f" <"$a" >"$a.known"
    "known_$f" <"$b" >"$b.known"
    if cmp -s "$a.known" "$b.known"; then
      known+=("$f")
      continue
    fi
    differing+=("$f")
    diff -u --label "flagger/$f" --label "serin/$f" "$a.known" "$b.known" | sed 's/^/    /' | head -n 60 || true
  done
  echo "  ($((SECONDS - started)) s)"
  if [ ${#differing[@]} -eq 0 ]; then
    PASSED=$((PASSED + 1))
    if [ ${#known[@]} -eq 0 ]; then
      TABLE+=("$name | identical")
    else
      TABLE+=("$name | identical but for known differences (docs/compatibility.md) in: ${known[*]}")
    fi
  else
    FAILED=$((FAILED + 1))
    TABLE+=("$name | differences: ${differing[*]}")
  fi
done


echo
echo "scenario | identical / differences"
printf '%s\n' "${TABLE[@]}"
echo "differential: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
