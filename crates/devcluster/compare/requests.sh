#!/usr/bin/env bash
# The scripted kubectl requests that compare.sh sends to the dev cluster and to a real
# kube-apiserver. Prints a normalised transcript: per step the exit code, the HTTP status of
# every non-discovery request (kubectl -v=6), and the output with the volatile parts (uids,
# resourceVersions, timestamps, ages, ports, random name suffixes) replaced.
# Needs KUBECONFIG, kubectl (or KUBECTL=path), python3. Usage: KUBECONFIG=... requests.sh
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CRDS="$HERE/../../../deploy/crds/crds.yaml"
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
export HOME="$TMP" KUBECACHEDIR="$TMP/cache"

norm_text() {
  sed -E \
    -e 's#https://127\.0\.0\.1:[0-9]+#https://SERVER#g' \
    -e 's#/tmp/tmp\.[A-Za-z0-9]+#TMP#g' \
    -e 's/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z/TIME/g' \
    -e 's/\b[0-9]+(s|m[0-9]*s?|h)\b/AGE/g' \
    -e 's/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/UID/g'
}

# Drops what differs between any two servers (identity, times, controller-written status).
norm_json() {
  python3 -c '
import json, sys
def clean(o):
    if isinstance(o, dict):
        m = o.get("metadata")
        if isinstance(m, dict):
            for k in ("uid", "resourceVersion", "creationTimestamp", "selfLink"):
                m.pop(k, None)
            for e in m.get("managedFields") or []:
                e.pop("time", None)
            # Entries of the same second are ordered by name; times differ between runs.
            if m.get("managedFields"):
                m["managedFields"].sort(key=lambda e: (e.get("operation", ""), e.get("manager", ""), e.get("subresource", "")))
        spec = o.get("spec")
        if o.get("kind") == "Service" and isinstance(spec, dict) and spec.get("clusterIP") not in (None, "None"):
            # Each server allocates from its own service range.
            spec["clusterIP"] = "IP"
            spec["clusterIPs"] = ["IP" for _ in spec.get("clusterIPs") or []]
        if o.get("kind") in ("Deployment", "StatefulSet", "Pod", "Job"):
            o.pop("status", None)
        for k, v in list(o.items()):
            clean(v)
    elif isinstance(o, list):
        for v in o:
            clean(v)
    return o
try:
    doc = json.load(sys.stdin)
except ValueError as e:
    print("not JSON:", e); sys.exit(0)
print(json.dumps(clean(doc), indent=1, sort_keys=True))
'
}

# step NAME [--json] kubectl-args...
step() {
  local name="$1" json=false
  shift
  if [ "${1:-}" = "--json" ]; then json=true; shift; fi
  echo "== $name"
  "${KUBECTL:-kubectl}" -v=6 --request-timeout=20s "$@" >"$TMP/out" 2>"$TMP/err" </dev/null
  echo "exit: $?"
  # kubectl logs a response in one of two forms, by transport:
  #   I1204 … "Response" verb="POST" url="https://…/api/v1/namespaces?…" status="201 Created" …
  #   I1204 … POST https://…/api/v1/namespaces?… 201 Created in 3 milliseconds
  sed -nE \
    -e 's/.*"Response" verb="([A-Z]+)" url="https:\/\/[^/]+([^"?]*)[^"]*" status="([0-9]{3}).*/\1 \2 \3/p' \
    -e 's/^I[0-9]{4} .*\] (GET|POST|PUT|PATCH|DELETE) https:\/\/[^/]+([^ ?]*)[^ ]* ([0-9]{3}) .*/\1 \2 \3/p' \
    "$TMP/err" \
    | grep -vE '^GET /(api(/v1)?|apis(/[a-z0-9.-]+(/v[0-9a-z]+)?)?|version|openapi(/.*)?) ' \
    | sed 's/^/http: /'
  # Error bodies (kubectl logs them at -v=6), then what kubectl printed.
  sed -E -e 's/^I[0-9]{4} .*server response object: %s/response: /' -e '/^I[0-9]{4} /d' \
    "$TMP/err" | norm_text
  if $json; then norm_json <"$TMP/out"; else norm_text <"$TMP/out"; fi
}

apply_step() {
  local name="$1" file="$2"
  shift 2
  step "$name" apply -f "$file" "$@"
}

cat >"$TMP/canary-unknown.yaml" <<'YAML'
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  bogus: 1
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis: {interval: 1m, threshold: 5, maxWeight: 50, stepWeight: 10}
YAML
cat >"$TMP/canary-invalid.yaml" <<'YAML'
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: podinfo, namespace: test}
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}
  service: {port: 9898}
  analysis: {interval: 1x, threshold: 5, maxWeight: 50, stepWeight: 120}
YAML
cat >"$TMP/deploy.yaml" <<'YAML'
apiVersion: apps/v1
kind: Deployment
metadata: {name: podinfo, namespace: test}
spec:
  replicas: 2
  selector: {matchLabels: {app: podinfo}}
  template:
    metadata: {labels: {app: podinfo}}
    spec:
      containers:
      - name: podinfo
        image: ghcr.io/stefanprodan/podinfo:6.0.0
        ports: [{containerPort: 9898}]
YAML
cat >"$TMP/svc.yaml" <<'YAML'
apiVersion: v1
kind: Service
metadata: {name: podinfo, namespace: test}
spec:
  selector: {app: podinfo}
  ports: [{name: http, port: 9898}]
YAML
cat >"$TMP/kinds.yaml" <<'YAML'
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec: {controller: k8s.io/ingress-nginx}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny, namespace: test}
spec:
  podSelector: {matchLabels: {app: podinfo}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: test}
spec:
  serviceName: db
  replicas: 1
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: 'postgres:16'}]
YAML
echo "kubeconfig: data" >"$TMP/kubeconfig-file"

# The seeds' commands first.
step "create namespace" create ns test
step "create namespace again" create ns test
step "create namespace istio-system" create ns istio-system
step "label namespace" label namespace test istio-injection=enabled
step "namespace" --json get ns test -o json
step "create secret from file" -n istio-system create secret generic istio-kubeconfig --from-file "kubeconfig=$TMP/kubeconfig-file"
step "label secret" -n istio-system label secret istio-kubeconfig istio/multiCluster=true
step "secret" --json -n istio-system get secret istio-kubeconfig -o json
step "create configmap" -n test create configmap settings --from-literal=mode=canary
step "configmap" --json -n test get cm settings -o json
step "create deployment" -n test create deployment web --image=nginx:1.27 --replicas=2 --port=80
step "created deployment" --json -n test get deploy web -o json --show-managed-fields
step "run pod" -n test run tester --image=busybox:1 --labels=app=tester -- sleep 3600
step "pod" --json -n test get pod tester -o json
apply_step "apply deployment" "$TMP/deploy.yaml"
apply_step "apply service" "$TMP/svc.yaml"
step "service" --json -n test get svc podinfo -o json
step "set image" -n test set image deployment/podinfo podinfo=ghcr.io/stefanprodan/podinfo:6.0.1
step "scale" -n test scale deployment/podinfo --replicas=3
step "applied deployment" --json -n test get deploy podinfo -o json --show-managed-fields
step "server-side apply conflict" apply --server-side -f "$TMP/deploy.yaml"
step "server-side apply forced" apply --server-side --force-conflicts -f "$TMP/deploy.yaml"
step "server-side applied deployment" --json -n test get deploy podinfo -o json --show-managed-fields
# Kinds nothing acts on.
step "create ingress" -n test create ingress podinfo --class=nginx "--rule=app.example.com/*=podinfo:9898"
step "create pdb" -n test create pdb podinfo --selector=app=podinfo --min-available=1
step "create role" -n test create role leader --verb=get,update --resource=leases.coordination.k8s.io
step "create rolebinding" -n test create rolebinding leader --role=leader --serviceaccount=test:default
step "create clusterrole" create clusterrole serin-view --verb=get,list,watch --resource=deployments.apps
apply_step "apply kinds" "$TMP/kinds.yaml"
step "kinds" --json -n test get ingress,pdb,role,rolebinding,networkpolicy,statefulset -o json
step "kinds table" -n test get ingress,pdb,rolebinding,networkpolicy
step "cluster kinds" --json get ingressclass nginx -o json
# Custom resources.
apply_step "apply CRDs" "$CRDS"
step "CRDs established" wait --for=condition=Established crd/canaries.flagger.app --timeout=30s
apply_step "canary with an unknown field (strict)" "$TMP/canary-unknown.yaml"
apply_step "canary with an unknown field (not validated)" "$TMP/canary-unknown.yaml" --validate=false
step "pruned canary" --json -n test get canary podinfo -o json
step "delete canary" -n test delete canary podinfo
apply_step "invalid canary" "$TMP/canary-invalid.yaml"
step "canaries" get canaries --all-namespaces
# Errors.
step "get missing" -n test get deploy missing
step "delete configmap" -n test delete cm settings
step "get deleted" -n test get cm settings
step "bad label" -n test label cm missing "bad key=x"
