# Opens the load tester's rollback gate for this namespace's Canary (NS, LOADTESTER are set).
curl -sf -X POST -d "{\"name\":\"podinfo\",\"namespace\":\"$NS\"}" "$LOADTESTER/rollback/open" >/dev/null
