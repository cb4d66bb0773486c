# The analysis has started: suspend the Canary, and resume it 25 s (two and a half intervals)
# later in the background (NS is set). The suite's 300 s timeout bounds the background job's
# effect; it ends on its own.
kubectl -n "$NS" patch canary podinfo --type merge -p '{"spec":{"suspend":true}}' >/dev/null
(sleep 25 && kubectl -n "$NS" patch canary podinfo --type merge -p '{"spec":{"suspend":false}}' >/dev/null) \
  >/dev/null 2>&1 &
