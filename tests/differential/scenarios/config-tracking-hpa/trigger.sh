# The new revision is a change of the tracked ConfigMap, not of the pod template (NS is set).
kubectl -n "$NS" patch configmap podinfo-config --type merge \
  -p '{"data":{"PODINFO_UI_MESSAGE":"hello again"}}' >/dev/null
