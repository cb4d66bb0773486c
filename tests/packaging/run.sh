#!/usr/bin/env bash
# Packaging checks: the Helm charts (helm lint + helm template golden files with the seeds'
# --set lines), the kustomize bases and GitOps examples (kubectl kustomize golden files), and the
# copies of the CRDs and dashboards inside charts/ and kustomize/.
#
#   tests/packaging/run.sh            check
#   UPDATE=1 tests/packaging/run.sh   rewrite the golden files and the copies, then review the diff
#
# Also builds the controller image as an OCI layout from target/debug/serin (or $SERIN_BINARY)
# with tools/oci-image and reads it back.
#
# helm is built from its Go module (tools/helm) into a cache keyed by tools/helm/go.sum, so a
# second run takes seconds. Needs go and kubectl (kustomize is built into kubectl).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
golden=tests/packaging/golden
update=${UPDATE:-}

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

# --- helm, built from tools/helm -------------------------------------------------------------
helm=$(tests/packaging/helm.sh)
echo "== $("$helm" version --short)"

# Keep helm away from the user's repositories and caches.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export HELM_CACHE_HOME=$tmp/cache HELM_CONFIG_HOME=$tmp/config HELM_DATA_HOME=$tmp/data

compare() { # NAME FILE(actual)
  local name=$1 actual=$2 expected=$golden/$1.yaml
  if [[ -n $update ]]; then
    cp "$actual" "$expected"
    pass "$name (golden rewritten)"
  elif [[ ! -f $expected ]]; then
    fail "$name: no golden file $expected (UPDATE=1 writes it)"
  elif diff -u "$expected" "$actual" >"$tmp/diff"; then
    pass "$name"
  else
    fail "$name: rendering differs from $expected (UPDATE=1 rewrites it)"
    head -40 "$tmp/diff"
  fi
}

# --- copies -------------------------------------------------------------------------------------
same() { # SOURCE COPY
  if [[ -n $update ]]; then cp "$1" "$2"; fi
  if cmp -s "$1" "$2"; then pass "$2 is $1"; else fail "$2 differs from $1 (UPDATE=1 copies it)"; fi
}
echo "== copies"
same deploy/crds/crds.yaml charts/serin/crds/crds.yaml
same deploy/crds/crds.yaml kustomize/base/serin/crd.yaml
for d in deploy/dashboards/*.json; do same "$d" "charts/grafana/dashboards/$(basename "$d")"; done

# --- helm lint and template ----------------------------------------------------------------------
echo "== helm lint"
for chart in charts/*/; do
  if "$helm" lint --strict "$chart" >"$tmp/lint" 2>&1; then pass "helm lint $chart"; else fail "helm lint $chart"; cat "$tmp/lint"; fi
done

echo "== helm template"
while read -r name chart release namespace rest; do
  [[ -z $name || $name == \#* ]] && continue
  read -r -a flags <<<"$rest"
  if ! "$helm" lint --strict "charts/$chart" --namespace "$namespace" "${flags[@]}" >"$tmp/lint" 2>&1; then
    fail "$name: helm lint with its values"
    cat "$tmp/lint"
    continue
  fi
  if "$helm" template "$release" "charts/$chart" --namespace "$namespace" "${flags[@]}" >"$tmp/out.yaml" 2>"$tmp/err"; then
    compare "$name" "$tmp/out.yaml"
  else
    fail "$name: helm template failed"
    cat "$tmp/err"
  fi
done <tests/packaging/helm-cases.txt

# crd.create=true renders the CRDs of crds/ as templates.
if "$helm" template serin charts/serin --set crd.create=true --show-only templates/crd.yaml >"$tmp/out.yaml" 2>"$tmp/err" \
  && [[ $(grep -c '^kind: CustomResourceDefinition$' "$tmp/out.yaml") -eq 3 ]] \
  && grep -q 'name: canaries.flagger.app' "$tmp/out.yaml"; then
  pass "crd.create=true renders the three CRDs"
else
  fail "crd.create=true does not render the three CRDs"
  cat "$tmp/err"
fi

# A value the chart refuses is refused with a plain message.
if "$helm" template serin charts/serin --set rbac.scope=namespace >"$tmp/out.yaml" 2>"$tmp/err"; then
  fail "rbac.scope=namespace without namespace should be refused"
elif grep -q "rbac.scope=namespace needs namespace" "$tmp/err"; then
  pass "rbac.scope=namespace without namespace is refused"
else
  fail "rbac.scope=namespace without namespace: unexpected error"
  cat "$tmp/err"
fi

# --- kustomize -------------------------------------------------------------------------------------
# Prints a kustomize build without its CustomResourceDefinitions.
without_crds() {
  awk 'function flush() { if (doc != "" && doc !~ /\nkind: CustomResourceDefinition\n/) printf "%s", doc; doc = "" }
       /^---$/ { flush(); doc = "---\n"; next }
       { doc = doc $0 "\n" }
       END { flush() }' <(echo "---"; cat)
}
echo "== kubectl kustomize"
if ! command -v kubectl >/dev/null 2>&1; then
  fail "kubectl is not installed (.ci/run installs it)"
else
  while read -r name dir; do
    [[ -z $name || $name == \#* ]] && continue
    if kubectl kustomize "$dir" >"$tmp/k.yaml" 2>"$tmp/err"; then
      without_crds <"$tmp/k.yaml" >"$tmp/out.yaml"
      compare "kustomize-$name" "$tmp/out.yaml"
    else
      fail "kustomize-$name: kubectl kustomize $dir failed"
      cat "$tmp/err"
    fi
  done <tests/packaging/kustomize-cases.txt
fi

# --- the GitOps examples' Canaries and MetricTemplates pass `serin validate` --------------------------
echo "== serin validate (GitOps examples)"
bin=${SERIN_BINARY:-$root/target/debug/serin}
if [[ ! -x $bin ]]; then
  echo "building $bin"
  cargo build -p serin --bin serin --locked
fi
if kubectl kustomize examples/gitops/flux/apps | "$bin" validate - >"$tmp/v" 2>&1 && grep -q "4 document(s) checked: 0 error(s)" "$tmp/v"; then
  pass "serin validate examples/gitops/flux/apps: $(cat "$tmp/v")"
else
  fail "serin validate examples/gitops/flux/apps"
  cat "$tmp/v"
fi

# --- the images' build: without the workstation commands (Dockerfile) ------------------------------
echo "== cargo check --no-default-features (what the images build)"
if cargo check -p serin --no-default-features --bins --locked --quiet >"$tmp/check" 2>&1; then
  pass "serin without the workstation feature compiles (controller, loadtester, hey, crds, validate)"
else
  fail "serin --no-default-features"
  cat "$tmp/check"
fi

# --- the OCI image, built without a Docker engine ---------------------------------------------------
echo "== OCI image layout (tools/oci-image)"
if (cd tools/oci-image && SERIN_BINARY=$bin go test -count=1 . >"$tmp/go" 2>&1); then
  pass "oci-image: layout reads back (entrypoint, user, labels, files) and its serin runs"
else
  fail "oci-image"
fi
cat "$tmp/go"

# --- the images' binary: glibc linked statically, as the Dockerfile builds it --------------------------
# (debug profile here, the images build `production`: the linkage is the same). It must need no
# shared library and still resolve names (a static glibc reads /etc/hosts and /etc/resolv.conf
# itself): `hey` against localhost:1 must fail to connect to 127.0.0.1, not to look it up.
echo "== static binary (what the images ship)"
static=$root/target/x86_64-unknown-linux-gnu/debug/serin
if RUSTFLAGS="-C target-feature=+crt-static" cargo build -p serin --bin serin --no-default-features \
  --target x86_64-unknown-linux-gnu --locked --quiet >"$tmp/static" 2>&1; then
  if (cd tools/oci-image && SERIN_BINARY=$static SERIN_EXPECT_STATIC=1 go test -count=1 \
    -run TestLayoutReadsBackAndItsBinaryRuns . >"$tmp/go" 2>&1); then
    pass "static build: no loader, no shared library; its image's serin runs"
  else
    fail "static build: oci-image"
    cat "$tmp/go"
  fi
  if "$static" hey -n 1 -c 1 http://localhost:1/ 2>&1 | grep -q "dial tcp 127.0.0.1:1"; then
    pass "static build: resolves localhost from /etc/hosts"
  else
    fail "static build: name lookup"
    "$static" hey -n 1 -c 1 http://localhost:1/ 2>&1 | tail -5
  fi
else
  fail "static build (RUSTFLAGS=-C target-feature=+crt-static, --target x86_64-unknown-linux-gnu)"
  cat "$tmp/static"
fi

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
