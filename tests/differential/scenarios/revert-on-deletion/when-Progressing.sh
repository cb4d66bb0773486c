# The analysis has started: once the routes are at the first step (canaryWeight > 0), delete
# the Canary (NS and PROGRESSING_SNAPSHOT are set). In the background, so that the suite goes
# on; it gives up after 60 s (the Canary then never ends and the scenario times out). The
# finalizer holds the Canary while the controller reverts the target and the routes.
(
  for _ in $(seq 1 60); do
    weight="$(kubectl -n "$NS" get canary podinfo -o jsonpath='{.status.canaryWeight}' 2>/dev/null || true)"
    # Not before the suite has recorded the objects of the first step (PROGRESSING_SNAPSHOT,
    # empty until then): deleted earlier, the Canary would leave nothing to record.
    if [ "${weight:-0}" -gt 0 ] && [ -s "$PROGRESSING_SNAPSHOT" ]; then
      kubectl -n "$NS" delete canary podinfo --wait=false >/dev/null
      exit 0
    fi
    sleep 1
  done
) >/dev/null 2>&1 &
