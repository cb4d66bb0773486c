#!/usr/bin/env bash
# Serin's chaos suite: healthy and hostile Canaries on the dev cluster, the real `serin controller`
# SIGKILLed at random moments (or two controllers under leader election, the leader killed), API
# faults, invariants checked continuously. See tests/chaos/README.md.
#
#   tests/chaos/run.sh                      # the short version CI runs (about 1.5 minutes)
#   tests/chaos/run.sh --profile long       # 20 healthy canaries, 8 kills, API faults (up to 10 min)
#   tests/chaos/run.sh --release --profile long --leader --undecodable
#
# Every other flag goes to the chaos program (`--help` lists them). Exit status 1 on any violation.
set -euo pipefail
cd "$(dirname "$0")/../.."

profile=debug
args=()
for a in "$@"; do
  case "$a" in
    --release) profile=release ;;
    *) args+=("$a") ;;
  esac
done

target="${CARGO_TARGET_DIR:-target}"
if [ "$profile" = release ]; then
  cargo build --locked --release -p serin --bin serin --example chaos
else
  cargo build --locked -p serin --bin serin --example chaos
fi
exec "$target/$profile/examples/chaos" --serin "$target/$profile/serin" "${args[@]}"
