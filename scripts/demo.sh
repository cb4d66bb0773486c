#!/usr/bin/env bash
# The main command: seed 000's Flux + Istio workshop on this machine (`serin demo`, see
# docs/demo.md). On a fresh Debian/Ubuntu machine it first installs what the demo needs and is
# missing (prometheus, curl) with apt-get; elsewhere it says what to install.
# Usage: scripts/demo.sh [--fast] [--keep] [--summary FILE]
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v prometheus >/dev/null 2>&1 || [ -x /usr/bin/prometheus ] || missing+=(prometheus)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "== installing ${missing[*]} (apt-get)"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    # The Debian package starts a system Prometheus; the demo runs its own on a free port.
    if command -v systemctl >/dev/null 2>&1; then $sudo systemctl stop prometheus 2>/dev/null || true; fi
  else
    echo "serin demo needs: ${missing[*]} (Prometheus: https://prometheus.io/download/, on PATH)" >&2
    exit 1
  fi
fi

command -v cargo >/dev/null 2>&1 || { echo "serin demo needs Rust's cargo: https://rustup.rs" >&2; exit 1; }
cargo build --release -q -p serin
exec target/release/serin demo "$@"
