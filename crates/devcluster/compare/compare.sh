#!/usr/bin/env bash
# Sends the same scripted kubectl requests (requests.sh) to the dev cluster (`serin
# dev-cluster`) and to a real kube-apiserver (scripts/real-cluster.sh), and prints the
# differences of the normalised transcripts. Exit status 0 when every step that differs is
# listed, with its reason, in known-differences.txt.
#
#   crates/devcluster/compare/compare.sh [PATH/TO/real-cluster.sh]
#
# SERIN_BIN picks the serin binary (default target/debug/serin; build it first);
# COMPARE_OUT keeps the transcripts in that directory; KUBECTL picks one kubectl binary for
# both runs (a kubectl dispatcher that picks a client per server version would otherwise make
# the two transcripts come from two clients).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"
SERIN="${SERIN_BIN:-$ROOT/target/debug/serin}"
REAL="${1:-$ROOT/scripts/real-cluster.sh}"
OUT="${COMPARE_OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
[ -x "$SERIN" ] || { echo "compare: no serin binary at $SERIN (cargo build -p serin)" >&2; exit 2; }
[ -x "$REAL" ] || { echo "compare: no real-cluster script at $REAL" >&2; exit 2; }

rm -f "$OUT/dev.kubeconfig"
"$SERIN" dev-cluster --kubeconfig "$OUT/dev.kubeconfig" >"$OUT/dev.log" 2>&1 &
dev=$!
trap 'kill "$dev" 2>/dev/null || true; wait "$dev" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  [ -s "$OUT/dev.kubeconfig" ] && break
  kill -0 "$dev" 2>/dev/null || { cat "$OUT/dev.log" >&2; exit 2; }
  sleep 0.1
done
KUBECONFIG="$OUT/dev.kubeconfig" "$HERE/requests.sh" >"$OUT/dev.txt"
kill "$dev" 2>/dev/null || true
wait "$dev" 2>/dev/null || true
trap - EXIT

"$REAL" "$HERE/requests.sh" >"$OUT/real.txt"

steps=$(grep -c '^== ' "$OUT/real.txt" || true)
diff -u --label real --label dev "$OUT/real.txt" "$OUT/dev.txt" >"$OUT/diff.txt" || true
# The steps whose lines differ.
diff <(awk '/^== /{s=$0; next} {print s " :: " $0}' "$OUT/real.txt") \
  <(awk '/^== /{s=$0; next} {print s " :: " $0}' "$OUT/dev.txt") |
  grep -E '^[<>] == ' | sed -E 's/^[<>] == (.*) :: .*/\1/' | sort -u >"$OUT/differing.txt" || true
sed -E 's/ *#.*//; /^$/d' "$HERE/known-differences.txt" | sort -u >"$OUT/known.txt"
comm -23 "$OUT/differing.txt" "$OUT/known.txt" >"$OUT/unexpected.txt"
differing=$(wc -l <"$OUT/differing.txt")
if [ -s "$OUT/unexpected.txt" ]; then
  cat "$OUT/diff.txt"
  echo "compare: $steps steps, $differing differ; not in known-differences.txt:" >&2
  sed 's/^/  /' "$OUT/unexpected.txt" >&2
  exit 1
fi
echo "compare: $steps steps, $differing differ, all of them known (transcripts and diff.txt in $OUT)"
