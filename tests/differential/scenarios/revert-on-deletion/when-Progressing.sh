# The analysis has started: once the routes are at the first step (canaryWeight > 0), delete
# the Canary (NS is set). In the background, so that the suite goes on; it gives up after 60 s
# (the Canary then never ends and the scenario times out). The finalizer holds the Canary while
# the controller reverts the target and the routes.
(
  for _ in $(seq 1 60); do
    weight="$(kubectl -n "$NS" get canary podinfo -o jsonpath='{.status.canaryWeight}' 2>/dev/null || true)"
    if [ "${weight:-0}" -gt 0 ]; then
      kubectl -n "$NS" delete canary podinfo --wait=false >/dev/null
      exit 0
    fi
    sleep 1
  done
) >/dev/null 2>&1 &
