#!/usr/bin/env bash
# Every test of the project, what CI runs (after .ci/run has installed the Debian packages they
# need): the Rust tests, then the suites that drive the real binaries — the packaging checks
# (Helm, kustomize, the OCI image), the charts on the real control plane, the GitOps no-drift
# test, the short chaos suite, the end-to-end suite and the Flagger differential suite on the real
# control plane (kube-apiserver, kube-controller-manager and etcd built from their Go modules,
# cached under ~/.cache/serin), and the dev cluster's fidelity check against that control plane.
#
# Everything is compiled first; then the suites run in three lanes at once (most of their time is
# spent waiting on analysis intervals, not on the CPU), each suite's output kept in its own file
# and printed whole when the suite ends. Every suite that starts a control plane starts its own
# on free ports, so the lanes do not share state.
#
# Usage: scripts/test.sh                                   every suite
#        SERIN_TEST_SKIP="chaos real-cluster" scripts/test.sh   leave suites out by name
#        SERIN_TEST_LANES=1 scripts/test.sh                 one suite at a time (output streamed)
# Ends with "suites: N passed, M failed" and a non-zero status when one failed.
set -uo pipefail
cd "$(dirname "$0")/.."

skip=" ${SERIN_TEST_SKIP:-} "
lanes=${SERIN_TEST_LANES:-3}
logs=$(mktemp -d "${TMPDIR:-/tmp}/serin-test.XXXXXX")
lane_pids=()
stop_lanes() {
  local pid
  for pid in "${lane_pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null
}
trap 'stop_lanes; rm -rf "$logs"; exit 130' INT TERM
trap 'rm -rf "$logs"' EXIT

# The suites, by lane (each lane runs its suites in order). The longest ones lead their lanes.
suite_cargo=(cargo test --workspace --locked --no-fail-fast)
suite_packaging=(tests/packaging/run.sh)
suite_packaging_real=(tests/packaging/real-cluster.sh)
suite_no_drift=(tests/packaging/no-drift.sh)
suite_chaos=(tests/chaos/run.sh --profile short)
suite_real=(tests/e2e/real-cluster.sh)
# Flagger v1.41.0 (built from its Go module) and Serin side by side (docs/differential.md).
suite_differential=(tests/differential/run.sh)
# The dev cluster's answers compared with a real kube-apiserver's (docs/devcluster.md, fidelity).
suite_fidelity=(scripts/real-cluster.sh env DEVCLUSTER_COMPARE_REAL=1
  cargo test -p devcluster --test compare_real --locked)

run_suite() { # NAME: runs it, writes NAME.status ("passed"/"FAILED" and the seconds)
  local name="$1" var="suite_${1//-/_}"
  case "$name" in
    packaging-real-cluster) var=suite_packaging_real ;;
    real-cluster) var=suite_real ;;
    devcluster-fidelity) var=suite_fidelity ;;
  esac
  local -n cmd="$var"
  if [[ "$skip" == *" $name "* ]]; then
    echo "skipped" >"$logs/$name.status"
    echo "== $name: skipped (SERIN_TEST_SKIP)"
    return
  fi
  local start=$SECONDS rc=0
  if [[ $lanes -le 1 ]]; then
    echo "== $name: ${cmd[*]}"
    "${cmd[@]}" || rc=$?
  else
    "${cmd[@]}" >"$logs/$name.log" 2>&1 </dev/null || rc=$?
  fi
  local verdict=passed
  [[ $rc -eq 0 ]] || verdict=FAILED
  echo "$verdict $((SECONDS - start))" >"$logs/$name.status"
  if [[ $lanes -gt 1 ]]; then
    # One suite's output at a time, whole.
    (
      flock 9
      echo "== $name: ${cmd[*]}"
      cat "$logs/$name.log"
      echo "== $name: $verdict in $((SECONDS - start)) s"
    ) 9>"$logs/print.lock"
  else
    echo "== $name: $verdict in $((SECONDS - start)) s"
  fi
}

order=(cargo real-cluster differential chaos no-drift packaging-real-cluster packaging devcluster-fidelity)
if [[ $lanes -le 1 ]]; then
  for name in "${order[@]}"; do run_suite "$name"; done
else
  # Build once, before the lanes start, so that no suite waits on another's build (the suites'
  # own `cargo build` lines then find everything up to date).
  echo "== build: the workspace's tests, binaries and examples"
  if ! cargo test --workspace --locked --no-run --quiet || ! cargo build --workspace --locked --bins --examples --quiet; then
    echo "== build FAILED"
    echo "suites: 0 passed, 1 failed"
    exit 1
  fi
  lane() { local name; for name in "$@"; do run_suite "$name"; done; }
  set -m
  lane cargo devcluster-fidelity packaging &
  lane_pids+=($!)
  lane real-cluster chaos &
  lane_pids+=($!)
  lane differential no-drift packaging-real-cluster &
  lane_pids+=($!)
  set +m
  wait "${lane_pids[@]}"
fi

passed=0
failed=0
failures=()
echo
for name in "${order[@]}"; do
  verdict=FAILED secs=""
  [[ -f "$logs/$name.status" ]] && read -r verdict secs <"$logs/$name.status"
  case "$verdict" in
    passed) passed=$((passed + 1)) ;;
    skipped) ;;
    *) failed=$((failed + 1)) && failures+=("$name") ;;
  esac
  printf '%-24s %-8s %s\n' "$name" "$verdict" "${secs:+$secs s}"
done
echo
[[ $failed -eq 0 ]] || echo "failed suites: ${failures[*]}"
echo "suites: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
