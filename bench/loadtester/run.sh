#!/usr/bin/env bash
# Benchmark of the built-in hey (`serin hey`) against Debian's `hey` and `wrk`, all driving the
# same local HTTP server (crates/serin/examples/bench_target.rs) on loopback with the same
# concurrency and duration. See README.md beside this file; results go to docs/performance.md.
#
# Environment: RUNS (3), DURATION (10s), CONC (50), PORT (18081), PIN (1: target on CPU 0 and
# load generator on CPU 1; 0: no pinning), TARGET_THREADS (1), CARGO_TARGET_DIR (target).
set -euo pipefail

RUNS=${RUNS:-3}
DURATION=${DURATION:-10s}
CONC=${CONC:-50}
PORT=${PORT:-18081}
PIN=${PIN:-1}
TARGET_THREADS=${TARGET_THREADS:-1}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
URL="http://127.0.0.1:$PORT/"

for tool in hey wrk taskset; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y hey wrk util-linux" >&2; exit 1; }
done

(cd "$ROOT" && cargo build --release -p serin --bin serin --example bench_target)
SERIN=$TARGET_DIR/release/serin
SERVER=$TARGET_DIR/release/examples/bench_target

if [ "$PIN" = 1 ]; then PIN_SERVER=(taskset -c 0); PIN_CLIENT=(taskset -c 1); else PIN_SERVER=(); PIN_CLIENT=(); fi

"${PIN_SERVER[@]}" "$SERVER" "$PORT" "$TARGET_THREADS" &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fs "$URL" >/dev/null && break; sleep 0.1; done

OUT=$(mktemp -d)
# hey-format summary → "rps p50_ms p99_ms"
parse_hey() {
  awk '/Requests\/sec:/ {rps=$2} /50% in/ {p50=$3*1000} /99% in/ {p99=$3*1000}
       END {printf "%.0f %.3f %.3f\n", rps, p50, p99}' "$1"
}
# wrk --latency output → "rps p50_ms p99_ms"
parse_wrk() {
  awk 'function ms(v) { if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
       /Requests\/sec:/ {rps=$2} $1=="50%" {p50=ms($2)} $1=="99%" {p99=ms($2)}
       END {printf "%.0f %.3f %.3f\n", rps, p50, p99}' "$1"
}

run_tool() {
  local tool=$1 run=$2 file="$OUT/$1.$2.txt"
  case $tool in
    serin) "${PIN_CLIENT[@]}" "$SERIN" hey -z "$DURATION" -c "$CONC" "$URL" >"$file"; echo "serin $run $(parse_hey "$file")" ;;
    hey)   "${PIN_CLIENT[@]}" hey -z "$DURATION" -c "$CONC" "$URL" >"$file"; echo "hey $run $(parse_hey "$file")" ;;
    wrk)   "${PIN_CLIENT[@]}" wrk -t1 -c "$CONC" -d "$DURATION" --latency "$URL" >"$file"; echo "wrk $run $(parse_wrk "$file")" ;;
  esac
}

# Warm-up (not recorded).
"${PIN_CLIENT[@]}" "$SERIN" hey -z 2s -c "$CONC" "$URL" >/dev/null

echo "# tool run requests/s p50_ms p99_ms  (c=$CONC, $DURATION, pin=$PIN, target threads=$TARGET_THREADS)"
for run in $(seq "$RUNS"); do
  # Rotate the order so that drift does not favour one tool.
  case $((run % 3)) in
    1) order="serin hey wrk" ;; 2) order="hey wrk serin" ;; *) order="wrk serin hey" ;;
  esac
  for tool in $order; do run_tool "$tool" "$run"; done
done | tee "$OUT/results.txt"

awk '
  !/^#/ { n[$1]++; rps[$1]+=$3; p50[$1]+=$4; p99[$1]+=$5; r[$1, $2]=$3; if ($2>runs) runs=$2 }
  function median(a, k,   i, j, t) {
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (k % 2) ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2
  }
  END {
    printf "\n%-6s %12s %10s %10s\n", "tool", "mean req/s", "p50 ms", "p99 ms"
    for (t in n) printf "%-6s %12.0f %10.3f %10.3f\n", t, rps[t]/n[t], p50[t]/n[t], p99[t]/n[t]
    printf "\nserin/hey throughput (means): %.2fx   serin/wrk: %.2fx\n", rps["serin"]/rps["hey"], rps["serin"]/rps["wrk"]
    for (i = 1; i <= runs; i++) { h[i] = r["serin", i] / r["hey", i]; w[i] = r["serin", i] / r["wrk", i] }
    printf "serin/hey per run: "; for (i = 1; i <= runs; i++) printf "%.2f ", h[i]
    printf "  median %.2fx\n", median(h, runs)
    printf "serin/wrk per run: "; for (i = 1; i <= runs; i++) printf "%.2f ", w[i]
    printf "  median %.2fx\n", median(w, runs)
  }' "$OUT/results.txt"
echo "raw outputs: $OUT"
