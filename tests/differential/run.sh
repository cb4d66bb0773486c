#!/usr/bin/env bash
# The differential suite: Flagger and Serin on the same real control plane
# (scripts/real-cluster.sh), each in its own namespace, with the same manifests, the same
# workload simulator (`serin simulate-workloads`) and the same stand-ins for Prometheus and
# webhook receivers (fake-services.py). For every scenario under tests/differential/scenarios/
# it records, for both, the sequence of Canary status values (phase, canaryWeight, iterations,
# failedChecks), the sequence of distinct Kubernetes Event texts, the generated objects (after
# initialisation, after the first analysis step and at the end; where a scenario asks, the
# VirtualService of every step), the PromQL queries, webhook payloads and Slack messages
# received and the log `msg` texts about the Canary, normalises namespaces, times, uids,
# hashes, cookie values and cluster IPs, and diffs them. All scenarios run at once,
# each with its own Flagger and Serin.
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
for tool in kubectl jq python3; do
  command -v "$tool" >/dev/null 2>&1 || { echo "$tool is not installed"; exit 1; }
done

scenarios=("$@")
if [ ${#scenarios[@]} -eq 0 ]; then
  for d in "$HERE"/scenarios/*/; do scenarios+=("$(basename "$d")"); done
fi
for name in "${scenarios[@]}"; do
  [ -f "$HERE/scenarios/$name/canary.yaml" ] || { echo "no scenario $name"; exit 2; }
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/serin-diff.XXXXXX")"
SERVICES=()        # processes of the whole run (simulator, load tester, the status watch)
declare -A PROCS=() # scenario -> its own processes (controllers, fake services)
stop_pids() {
  local pid
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}
finish() {
  local name
  for name in "${!PROCS[@]}"; do
    # shellcheck disable=SC2086 # a list of pids
    stop_pids ${PROCS[$name]}
  done
  stop_pids "${SERVICES[@]}"
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
  crd/metrictemplates.flagger.app crd/virtualservices.networking.istio.io \
  crd/destinationrules.networking.istio.io >/dev/null

"$SERIN_BIN" simulate-workloads --kubeconfig "$KUBECONFIG" --ready-delay-ms 300 \
  >"$WORK/simulator.log" 2>&1 &
SERVICES+=($!)
# Flagger's load tester: the gate and rollback endpoints of both controllers.
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
# Recording (one status watch and one event watch for all scenarios, so that many scenarios at
# once cost no more kubectl processes than one)

# Every write of every Canary as `NAMESPACE<TAB>phase weight=.. iterations=.. failedChecks=..`,
# from a watch, so short phases are not missed.
STATUS_JQ='"\(.metadata.namespace)\t" + (.status
  | "\(.phase // "-") weight=\(.canaryWeight // 0) iterations=\(.iterations // 0) failedChecks=\(.failedChecks // 0)")'
touch "$WORK/status.watch"
kubectl get canaries -A -w -o json 2>/dev/null \
  > >(jq --unbuffered -r "$STATUS_JQ" >"$WORK/status.watch") &
SERVICES+=($!)
# The status lines of namespace $1 without repeats; lines from before the controller's first
# status write ("-") are left out.
status_sequence() {
  awk -F'\t' -v ns="$1" '$1 == ns { print substr($0, length(ns) + 2) }' "$WORK/status.watch" \
    | grep -v '^- ' | uniq || true
}
# The current status line of every Canary, as `NAMESPACE PHASE weight=.. iterations=..` lines.
statuses_now() {
  awk -F'\t' 'NF == 2 { s[$1] = $2 } END { for (n in s) print n, s[n] }' "$WORK/status.watch"
}

# The latest status of the Canary in namespace $1, as `statuses_now` gives it.
status_of() {
  awk -F'\t' -v ns="$1" 'NF == 2 && $1 == ns { s = $2 } END { print s }' "$WORK/status.watch"
}

# Every version of every Canary event as `NAMESPACE<TAB>type reason kind/name message` (the
# namespace replaced by NS in the text), from a watch: client-go's event aggregation (Flagger)
# rewrites one "(combined from similar events)" Event object with each new message, so a poll
# would miss messages replaced within a second. Events of other objects, such as the API
# server's cluster-IP repair, are left out.
EVENTS_JQ='select(.involvedObject.kind == "Canary")
  | .metadata.namespace as $ns
  | "\($ns)\t" + ("\(.type) \(.reason) \(.involvedObject.kind)/\(.involvedObject.name) \(.message)"
      | gsub("\\.\($ns)"; ".NS") | gsub($ns; "NS") | gsub("[\t\n]"; " "))'
touch "$WORK/events.watch"
kubectl get events -A --field-selector involvedObject.kind=Canary -w -o json 2>/dev/null \
  > >(jq --unbuffered -r "$EVENTS_JQ" >"$WORK/events.watch") &
SERVICES+=($!)
# The distinct event texts of namespace $1 in order of first occurrence.
events_of() {
  awk -F'\t' -v ns="$1" '$1 == ns { line = substr($0, length(ns) + 2); if (!seen[line]++) print line }' \
    "$WORK/events.watch"
}

# The generated objects of namespace $1 as one JSON object keyed by kind/name (null when
# absent), normalised: no uid, resourceVersion, creationTimestamp, generation, managedFields,
# namespace, status or cluster IPs; the namespace name replaced by NS; the random `flagger-id`
# pod annotation (a new UUID on every rollout of the primary) replaced by UUID; the random value
# of a session-affinity cookie (`<name>cookie=<value>`, also in the cookie route's regex
# `.*<name>cookie.*<value>.*`) replaced by RANDOM. A scenario's `objects` file lists more objects
# to record (one kind/name a line).
OBJECTS=(deployment/podinfo-primary service/podinfo service/podinfo-canary
  service/podinfo-primary destinationrule/podinfo-canary destinationrule/podinfo-primary
  virtualservice/podinfo horizontalpodautoscaler/podinfo-primary configmap/podinfo-config-primary
  secret/podinfo-secret-primary)
COOKIE_JQ='gsub("cookie=[A-Za-z0-9]+"; "cookie=RANDOM") | gsub("cookie\\.\\*[A-Za-z0-9]+\\.\\*"; "cookie.*RANDOM.*")'
objects_now() {
  local ns="$1" name="$2" objects=("${OBJECTS[@]}")
  if [ -f "$HERE/scenarios/$name/objects" ]; then
    mapfile -t -O ${#objects[@]} objects < <(grep -v '^#' "$HERE/scenarios/$name/objects")
  fi
  { kubectl -n "$ns" get "${objects[@]}" --ignore-not-found -o json 2>/dev/null || true; } \
    | jq -S -s --arg ns "$ns" --args "
      def cookies: $COOKIE_JQ;"'
      (reduce $ARGS.positional[] as $k ({}; .[$k] = null))
      + (reduce (.[0].items // [])[] as $o ({};
          .[($o.kind | ascii_downcase) + "/" + $o.metadata.name] = $o))
      | map_values(if . == null then null else
          del(.metadata.uid, .metadata.resourceVersion, .metadata.creationTimestamp,
              .metadata.generation, .metadata.managedFields, .metadata.namespace, .status,
              .spec.clusterIP, .spec.clusterIPs)
          | if .metadata.ownerReferences then .metadata.ownerReferences |= map(del(.uid)) else . end
          | if .spec.template.metadata.annotations["flagger-id"] then
              .spec.template.metadata.annotations["flagger-id"] = "UUID" else . end
          | walk(if type == "string" then gsub("\\.\($ns)"; ".NS") | gsub($ns; "NS") | cookies else . end)
        end)' "${objects[@]}"
}

# The Canary's final status without its times; the revision hashes replaced by HASH (Serin's
# hashes are its own: docs/compatibility.md, "Revision hashes"), cookie values by RANDOM;
# `deleted` when the Canary is gone.
canary_status() {
  if ! kubectl -n "$1" get canary podinfo >/dev/null 2>&1; then
    echo deleted
    return
  fi
  kubectl -n "$1" get canary podinfo -o json | jq -S "def cookies: $COOKIE_JQ;"'
    .status | walk(if type == "string" then cookies else . end) | del(.lastTransitionTime)
    | if .conditions then .conditions |= map(del(.lastUpdateTime, .lastTransitionTime)) else . end
    | if .lastAppliedSpec then .lastAppliedSpec = "HASH" else . end
    | if .lastPromotedSpec then .lastPromotedSpec = "HASH" else . end'
}

# What the fake services recorded for namespace $1 (stdin): the namespace replaced by NS, the
# webhook `checksum` (a revision hash) by HASH, repeats left out (order of first occurrence).
recorded_sequence() {
  sed -E -e "s/\\.$1/.NS/g" -e "s/$1/NS/g" -e 's/"checksum": "[^"]*"/"checksum": "HASH"/g' \
    | awk '!seen[$0]++'
}

# The distinct `msg` texts of the JSON log lines of log $2 that name a Canary (a `canary`
# field: the analysis messages, not the start-up ones, which differ by nature), in order of
# first occurrence, the namespace $1 replaced by NS.
log_messages() {
  grep -h '^{' "$2" | jq -r --arg ns "$1" '
      select(.canary != null) | .msg | gsub("\\.\($ns)"; ".NS") | gsub($ns; "NS")' 2>/dev/null \
    | awk '!seen[$0]++' || true
}

# Known, deliberate differences (each one listed in docs/compatibility.md), applied to both
# recordings only when the raw recordings differ: known_FILE < recording > normalised.
# Flagger's SetStatusPhase zeroes canaryWeight and iterations on Promoting; Serin keeps them.
# WaitingPromotion: Flagger zeroes canaryWeight and sets iterations to N-1; Serin
# keeps both. Blue/green (iterations > 0) with all traffic on the canary: Flagger's weight is
# 0, Serin's 100.
known_status() {
  sed -E -e 's/^(Promoting|WaitingPromotion) weight=[0-9]+ iterations=-?[0-9]+/\1 weight=0 iterations=0/' \
    -e 's/^Progressing weight=100 iterations=([1-9][0-9]*)/Progressing weight=0 iterations=\1/'
}
# client-go's event aggregation (Flagger) prefixes the 11th similar event and later ones.
# The detail of the primary's first `not ready` line depends only on whether a controller's
# readiness check comes before or after the simulator's (or kube-controller-manager's) first
# status write of the new primary Deployment ("observed deployment generation less than desired
# generation" or "0 of 2 (readyThreshold 100%) updated replicas are available"): a race of the
# suite, not a difference of the controllers. Both must still say the primary is not ready.
PRIMARY_NOT_READY='s/(podinfo-primary\.NS not ready: waiting for rollout to finish: ).*/\1(detail)/'
known_events() {
  sed -E -e 's/^([^ ]+ [^ ]+ [^ ]+ )\(combined from similar events\): /\1/' -e "$PRIMARY_NOT_READY" \
    | awk '!seen[$0]++'
}
# Promotion: Flagger replaces the primary's annotations (dropping kubectl.kubernetes.io/ ones
# copied at initialisation); Serin leaves system annotations alone. revertOnDeletion: Flagger
# restores a VirtualService through its Go types, which adds `weight: 0` to a route's only
# destination; Serin restores the applied spec as written.
known_objects() {
  jq -S 'if .["virtualservice/podinfo"].spec.http then
      .["virtualservice/podinfo"].spec.http |= map(
        if (.route | length) == 1 and .route[0].weight == 0 then del(.route[0].weight) else . end)
    else . end
    | if .["deployment/podinfo-primary"].metadata.annotations then
      .["deployment/podinfo-primary"].metadata.annotations |=
        with_entries(select(.key | startswith("kubectl.kubernetes.io/") | not))
      | if .["deployment/podinfo-primary"].metadata.annotations == {} then
          del(.["deployment/podinfo-primary"].metadata.annotations) else . end
    else . end'
}
known_objects-initialized() { known_objects; }
known_objects-progressing() { known_objects; }
known_objects-final() { known_objects; }
# Flagger writes an empty trackedConfigs map; Serin leaves the field out.
# Serin's query pre-flight writes its own condition, MetricsReady.
known_canary-status() {
  jq -S 'if .trackedConfigs == {} then del(.trackedConfigs) else . end
    | if .conditions then .conditions |= map(select(.type != "MetricsReady")) else . end'
}
# Flagger collapses the whitespace of a query into single spaces but keeps one at the start and
# end (its built-in query templates and YAML block scalars begin or end with a line break);
# Serin trims the query. Serin's query pre-flight runs every query once for the primary
# (podinfo-primary) at initialisation and before the first traffic step; Flagger never queries
# the primary.
known_queries() { sed -E -e 's/^ +//; s/ +$//' -e '/podinfo-primary/d'; }
# The Slack `Traffic routing` field: Flagger prints the raw maxWeight (0 when unset, the ignored
# value with stepWeights); Serin the effective maximum (100 when unset, the last step).
# Promotion: Flagger updates the primary HPA on every Promoting tick because it never copies
# the HPA's labels and annotations; Serin keeps them in step, so has nothing to update.
# Flagger syncs the ConfigMap and Secret copies in Go map order (random): a run of `... synced`
# lines is compared sorted.
# revertOnDeletion: Flagger's per-canary ticker outlives the deleted Canary and logs that it is
# not found, and its work queue may finalize a stale copy of the Canary already gone (an error
# line, depending on timing); Serin logs the Service and VirtualService it restores.
known_logs() {
  { sed -E "$PRIMARY_NOT_READY" | uniq \
      | grep -v -E -e '^HorizontalPodAutoscaler v2 [^ ]* updated$' -e '^Canary [^ ]+ not found$' \
      -e '^Unable to finalize canary: get query error: .* not found$' \
      -e '^(Service [^ ]+ reverted|VirtualService [^ ]+ restored)$' || true; } | awk '
    function flush_run(i, j, t) {
      for (i = 2; i <= n; i++)
        for (j = i; j > 1 && run[j - 1] > run[j]; j--) { t = run[j]; run[j] = run[j - 1]; run[j - 1] = t }
      for (i = 1; i <= n; i++) print run[i]
      n = 0
    }
    /^(ConfigMap|Secret) [^ ]+ synced$/ { run[++n] = $0; next }
    { flush_run(); print }
    END { flush_run() }'
}
# Serin also alerts on failures Flagger does not alert on (a failing pre-rollout hook, the
# progress deadline, a finished interrupted rollback): those alerts are left out.
known_webhooks() {
  sed -E -e '/"text": "(Progress deadline exceeded, |Pre-rollout check |Canary [^ ]+ rolled back: an interrupted rollback)/d' \
    -e 's/(Weight steps: [0-9,]+ max: )[0-9]+/\1MAX/g' -e 's/(Weight step: [0-9]+ max: )0"/\1100"/g'
}
known_routes() { cat; }
RECORDINGS=(status events objects-initialized objects-progressing objects-final routes canary-status
  queries webhooks logs)

# ------------------------------------------------------------------------------------------
# Running the scenarios, all at once

declare -A STATE=() STARTED=() DEADLINE=() END_AT=() DURATION=() FAKE=() HOOKED=() PHASE=() STATUS=()

ns_of() { echo "diff-$1-$2"; }

# Namespaces, manifests, fake services and the controllers of scenario $1.
setup_scenario() {
  local name="$1" c ns dir pids="" port deployment
  for c in "${CONTROLLERS[@]}"; do
    dir="$WORK/$name/$c"
    mkdir -p "$dir"
    touch "$dir/queries.raw" "$dir/webhooks.raw" "$dir/routes"
    python3 "$HERE/fake-services.py" "$dir/fake.port" "$dir/queries.raw" "$dir/webhooks.raw" \
      >"$dir/fake.log" 2>&1 &
    pids+=" $!"
  done
  PROCS[$name]="$pids"
  for c in "${CONTROLLERS[@]}"; do
    ns="$(ns_of "$name" "$c")" dir="$WORK/$name/$c"
    for _ in $(seq 1 50); do [ -s "$dir/fake.port" ] && break; sleep 0.1; done
    [ -s "$dir/fake.port" ] || { echo "the fake services did not start:"; cat "$dir/fake.log"; exit 1; }
    FAKE[$name/$c]="http://127.0.0.1:$(cat "$dir/fake.port")"
    kubectl create namespace "$ns" >/dev/null
    deployment="$HERE/scenarios/$name/deployment.yaml"
    [ -f "$deployment" ] || deployment="$HERE/scenarios/deployment.yaml"
    kubectl -n "$ns" apply -f "$deployment" >/dev/null
    sed -e "s|LOADTESTER_URL|$LOADTESTER|g" -e "s|FAKE_URL|${FAKE[$name/$c]}|g" \
      "$HERE/scenarios/$name/canary.yaml" | kubectl -n "$ns" apply -f - >/dev/null
  done
  start_flagger "$name"
  ns="$(ns_of "$name" serin)" dir="$WORK/$name/serin"
  "$SERIN_BIN" controller --kubeconfig "$KUBECONFIG" --namespace "$ns" --mesh-provider istio \
    --metrics-server "${FAKE[$name/serin]}" --port 0 --log-level info \
    --slack-url "${FAKE[$name/serin]}/slack" --slack-channel differential --slack-user flagger \
    >"$dir/serin.log" 2>&1 &
  PROCS[$name]+=" $!"
  STATE[$name]=initializing
  STARTED[$name]=$SECONDS
  DEADLINE[$name]=$((SECONDS + SCENARIO_TIMEOUT))
}

# Starts Flagger for scenario $1. Its HTTP port comes from kcp-helper, which frees the port
# before Flagger binds it, and every outgoing connection on the machine takes its local port
# from the same range: when something took it first, Flagger exits at once ("HTTP server
# crashed ... address already in use", Flagger's pkg/server/server.go) and its Canary never
# moves. Such a start is retried on another port.
start_flagger() {
  local name=$1 ns dir port pid attempt
  ns="$(ns_of "$name" flagger)" dir="$WORK/$name/flagger"
  for attempt in 1 2 3; do
    port="$("$KCP_HELPER" ports 1)"
    "$FLAGGER_BIN" -kubeconfig "$KUBECONFIG" -namespace "$ns" -mesh-provider istio \
      -metrics-server "${FAKE[$name/flagger]}" -port "$port" -log-level info \
      -slack-url "${FAKE[$name/flagger]}/slack" -slack-channel differential -slack-user flagger \
      >"$dir/flagger.log" 2>&1 &
    pid=$!
    # Up to 10 s for its health endpoint (it serves it before it starts its controller).
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      curl -sf -o /dev/null "http://127.0.0.1:$port/healthz" && break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      PROCS[$name]+=" $pid"
      return
    fi
    wait "$pid" 2>/dev/null || true
    grep -q "address already in use" "$dir/flagger.log" || break
    echo "  $name: Flagger's port $port was taken before it bound it (attempt $attempt); starting it again"
  done
  echo "  $name: Flagger did not start; its log ends:"
  tail -n 20 "$dir/flagger.log" | sed 's/^/    /'
}

# The VirtualService of namespace $1 appended to file $2 when it differs from the last one
# recorded (scenarios with a `record-routes` file: one sample a second while running).
record_routes() {
  local vs
  vs="$(kubectl -n "$1" get virtualservice podinfo -o json 2>/dev/null \
    | jq -c -S "def cookies: $COOKIE_JQ;"'.spec | walk(if type == "string" then cookies else . end)' \
    | sed -E -e "s/\\.$1/.NS/g" -e "s/$1/NS/g")" || return 0
  [ -n "$vs" ] && [ "$vs" != "$(tail -n 1 "$2")" ] && echo "$vs" >>"$2"
  return 0
}

# A scenario hook script ($2) run for controller $3 of scenario $1.
run_hook() {
  local ns
  ns="$(ns_of "$1" "$3")"
  NS="$ns" LOADTESTER="$LOADTESTER" FAKE="${FAKE[$1/$3]}" \
    PROGRESSING_SNAPSHOT="$WORK/$1/$3/objects-progressing" bash "$2" \
    || echo "  $1: $(basename "$2") failed for $ns"
}

# Both Canaries initialised: record the generated objects, run before-trigger.sh, then start
# a new revision in both: the scenario's trigger.sh if it has one, else a new image.
trigger_scenario() {
  local name="$1" c ns
  for c in "${CONTROLLERS[@]}"; do
    ns="$(ns_of "$name" "$c")"
    objects_now "$ns" "$name" >"$WORK/$name/$c/objects-initialized"
    if [ -f "$HERE/scenarios/$name/before-trigger.sh" ]; then
      run_hook "$name" "$HERE/scenarios/$name/before-trigger.sh" "$c"
    fi
    if [ -f "$HERE/scenarios/$name/trigger.sh" ]; then
      run_hook "$name" "$HERE/scenarios/$name/trigger.sh" "$c"
    else
      kubectl -n "$ns" set image deployment/podinfo podinfod=stefanprodan/podinfo:6.0.1 >/dev/null
    fi
  done
}

# Final recordings of scenario $1; its processes are stopped and its namespaces deleted.
finish_scenario() {
  local name="$1" c ns dir
  for c in "${CONTROLLERS[@]}"; do
    ns="$(ns_of "$name" "$c")" dir="$WORK/$name/$c"
    touch "$dir/objects-initialized" "$dir/objects-progressing"
    # A deleted Canary: its generated objects go through the garbage collector first.
    if ! kubectl -n "$ns" get canary podinfo >/dev/null 2>&1; then
      kubectl -n "$ns" wait --for=delete --timeout=30s deployment/podinfo-primary \
        service/podinfo-canary service/podinfo-primary destinationrule/podinfo-canary \
        destinationrule/podinfo-primary >/dev/null 2>&1 || true
    fi
    objects_now "$ns" "$name" >"$dir/objects-final"
    canary_status "$ns" >"$dir/canary-status"
    status_sequence "$ns" >"$dir/status"
    events_of "$ns" >"$dir/events"
    recorded_sequence "$ns" <"$dir/queries.raw" >"$dir/queries"
    recorded_sequence "$ns" <"$dir/webhooks.raw" >"$dir/webhooks"
  done
  # shellcheck disable=SC2086 # a list of pids
  stop_pids ${PROCS[$name]}
  unset "PROCS[$name]"
  for c in "${CONTROLLERS[@]}"; do
    log_messages "$(ns_of "$name" "$c")" "$WORK/$name/$c/$c.log" >"$WORK/$name/$c/logs"
  done
  for c in "${CONTROLLERS[@]}"; do
    kubectl delete namespace "$(ns_of "$name" "$c")" --wait=false >/dev/null
  done
  DURATION[$name]=$((SECONDS - STARTED[$name]))
}

# One step of scenario $1's state machine: initializing (until both Canaries are Initialized)
# → running (until both are Succeeded or Failed; `when-PHASE.sh` hooks run once per
# controller the first time its Canary is in PHASE) → ending (3 s for the last events) → done.
step_scenario() {
  local name="$1" c ns p finished=true hook
  case "${STATE[$name]}" in
    initializing)
      for c in "${CONTROLLERS[@]}"; do
        [ "${PHASE[$(ns_of "$name" "$c")]:-}" = Initialized ] || finished=false
      done
      if $finished; then
        trigger_scenario "$name"
        STATE[$name]=running
      fi
      ;;
    running)
      for c in "${CONTROLLERS[@]}"; do
        ns="$(ns_of "$name" "$c")"
        p="${PHASE[$ns]:-}"
        hook="$HERE/scenarios/$name/when-$p.sh"
        if [ -n "$p" ] && [ -f "$hook" ] && [ -z "${HOOKED[$ns/$p]:-}" ]; then
          HOOKED[$ns/$p]=1
          run_hook "$name" "$hook" "$c"
        fi
        # The routes mid-run: the objects once the first step has been taken (routes are
        # written before the status that reports the step). STATUS was read at the top of the
        # round; on a loaded machine a round takes seconds, longest for the scenarios late in
        # the list, and the Canary may have stepped on since. So the step the snapshot shows
        # is the status read again from the watch after it, kept beside it: the two
        # controllers' snapshots are compared only when they show the same step.
        if [ ! -f "$WORK/$name/$c/objects-progressing" ] \
          && [[ ${STATUS[$ns]:-} =~ ^Progressing\ weight=([0-9]+)\ iterations=([0-9]+) ]] \
          && [ "${BASH_REMATCH[1]}${BASH_REMATCH[2]}" != 00 ]; then
          objects_now "$ns" "$name" >"$WORK/$name/$c/objects-progressing"
          status_of "$ns" >"$WORK/$name/$c/objects-progressing.step"
        fi
        if [ -f "$HERE/scenarios/$name/record-routes" ]; then record_routes "$ns" "$WORK/$name/$c/routes"; fi
        case "$p" in
          Succeeded | Failed) ;;
          # Deleted with revertOnDeletion: finished once the finalizer is removed and it is gone.
          Terminating) kubectl -n "$ns" get canary podinfo >/dev/null 2>&1 && finished=false ;;
          *) finished=false ;;
        esac
      done
      if $finished; then
        STATE[$name]=ending
        END_AT[$name]=$((SECONDS + 3))
      fi
      ;;
    ending)
      if [ $SECONDS -ge "${END_AT[$name]}" ]; then
        finish_scenario "$name"
        STATE[$name]=done
      fi
      return
      ;;
    *) return ;;
  esac
  if [ $SECONDS -ge "${DEADLINE[$name]}" ] && [ "${STATE[$name]}" != ending ]; then
    echo "  $name: timed out after $SCENARIO_TIMEOUT s (flagger: ${PHASE[$(ns_of "$name" flagger)]:-none}, serin: ${PHASE[$(ns_of "$name" serin)]:-none})"
    # The recorded files go with the work directory: keep the end of each controller's own log.
    local c
    for c in "${CONTROLLERS[@]}"; do
      echo "    $c's log ends:"
      tail -n 8 "$WORK/$name/$c/$c.log" | cut -c1-300 | sed 's/^/      /'
    done
    STATE[$name]=ending
    END_AT[$name]=$SECONDS
  fi
}

echo "== scenarios: ${scenarios[*]}"
for name in "${scenarios[@]}"; do setup_scenario "$name"; done
while :; do
  PHASE=() STATUS=()
  while read -r n p rest; do PHASE[$n]="$p" STATUS[$n]="$p $rest"; done < <(statuses_now)
  remaining=0
  for name in "${scenarios[@]}"; do
    step_scenario "$name"
    [ "${STATE[$name]}" = done ] || remaining=$((remaining + 1))
  done
  [ $remaining -eq 0 ] && break
  sleep 1
done

# ------------------------------------------------------------------------------------------
# Comparing

PASSED=0
FAILED=0
TABLE=()
for name in "${scenarios[@]}"; do
  echo "== scenario $name (${DURATION[$name]} s)"
  differing=()
  known=()
  for f in "${RECORDINGS[@]}"; do
    a="$WORK/$name/flagger/$f" b="$WORK/$name/serin/$f"
    if [ -f "$a.step" ] && [ -f "$b.step" ] && ! cmp -s "$a.step" "$b.step"; then
      echo "    $f not compared: the poll caught the controllers at different steps" \
        "(flagger: $(cat "$a.step"); serin: $(cat "$b.step"))"
      continue
    fi
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
