# The analysis of the new revision has started: start a newer one (NS is set).
kubectl -n "$NS" set image deployment/podinfo podinfod=stefanprodan/podinfo:6.0.2 >/dev/null
