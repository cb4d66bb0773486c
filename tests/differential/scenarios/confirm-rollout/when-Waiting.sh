# The Canary waits for approval: open its gate in the load tester (NS, LOADTESTER are set).
curl -sf -X POST -d "{\"name\":\"podinfo\",\"namespace\":\"$NS\"}" "$LOADTESTER/gate/open" >/dev/null
