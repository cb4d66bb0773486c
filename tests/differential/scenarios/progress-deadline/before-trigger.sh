# The next rollout of the target never gets a ready replica: the workload simulator's
# `never-ready` behaviour (NS is set).
kubectl -n "$NS" annotate deployment/podinfo devcluster.serin.dev/behaviour=never-ready >/dev/null
