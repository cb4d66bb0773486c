#!/usr/bin/env bash
# Every test of the project, what CI runs (after .ci/run has installed the Debian packages they
# need): the Rust tests, then the suites that drive the real binaries — the packaging checks
# (Helm, kustomize, the OCI image), the charts on the real control plane, the GitOps no-drift
# test, the short chaos suite,
# and the end-to-end suite on the real control plane (kube-apiserver, kube-controller-manager and
# etcd built from their Go modules, cached under ~/.cache/serin).
#
# Usage: scripts/test.sh            every suite
#        SERIN_TEST_SKIP="chaos real-cluster" scripts/test.sh   leave suites out by name
# Ends with "suites: N passed, M failed" and a non-zero status when one failed.
set -uo pipefail
cd "$(dirname "$0")/.."

skip=" ${SERIN_TEST_SKIP:-} "
passed=0
failed=0
failures=()
suite() {
  local name="$1"
  shift
  if [[ "$skip" == *" $name "* ]]; then
    echo "== $name: skipped (SERIN_TEST_SKIP)"
    return
  fi
  echo "== $name: $*"
  local start=$SECONDS
  if "$@"; then
    passed=$((passed + 1))
    echo "== $name: passed in $((SECONDS - start)) s"
  else
    failed=$((failed + 1))
    failures+=("$name")
    echo "== $name: FAILED after $((SECONDS - start)) s"
  fi
}

suite cargo cargo test --workspace --locked --no-fail-fast
suite packaging tests/packaging/run.sh
suite packaging-real-cluster tests/packaging/real-cluster.sh
suite no-drift tests/packaging/no-drift.sh
suite chaos tests/chaos/run.sh --profile short
suite real-cluster tests/e2e/real-cluster.sh
# Flagger v1.41.0 (built from its Go module) and Serin side by side (docs/differential.md).
suite differential tests/differential/run.sh
# The dev cluster's answers compared with a real kube-apiserver's (docs/devcluster.md, fidelity).
suite devcluster-fidelity scripts/real-cluster.sh env DEVCLUSTER_COMPARE_REAL=1 \
  cargo test -p devcluster --test compare_real --locked

echo
[[ $failed -eq 0 ]] || echo "failed suites: ${failures[*]}"
echo "suites: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
