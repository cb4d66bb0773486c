#!/usr/bin/env bash
# Builds Flagger (`flagger` and `loadtester`) from its Go module at the version pinned in
# tools/flagger/go.mod, for the differential suite (tests/differential/run.sh). Test tooling only.
#
#   tools/flagger/build.sh          build (or find in the cache) and print the bin dir
#   tools/flagger/build.sh --crds   print the path of Flagger's own CRD manifest (module cache)
#
# The binaries are cached under
# ${SERIN_CACHE_DIR:-~/.cache/serin}/flagger/<hash of go.mod, go.sum, Go version, flags>/.
set -euo pipefail

MODULE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${SERIN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/serin}/flagger"

say() { echo "flagger-build: $*" >&2; }
die() { say "$*"; exit 1; }

command -v go >/dev/null 2>&1 || die "Go is not installed (needed to build Flagger)"

if [ "${1:-}" = "--crds" ]; then
  dir="$(cd "$MODULE" && GOFLAGS=-mod=readonly go list -m -f '{{.Dir}}' github.com/fluxcd/flagger)" \
    || die "could not find the Flagger module (go mod download failed?)"
  [ -f "$dir/artifacts/flagger/crd.yaml" ] || die "no artifacts/flagger/crd.yaml in $dir"
  echo "$dir/artifacts/flagger/crd.yaml"
  exit 0
fi

ldflags="-s -w"
key="$( (cd "$MODULE" && cat go.mod go.sum; go version; echo "$ldflags") | sha256sum | cut -c1-16)"
BIN="$CACHE/$key"
tools=(flagger loadtester)
have_all() { for t in "${tools[@]}"; do [ -x "$BIN/$t" ] || return 1; done; }
if ! have_all; then
  mkdir -p "$CACHE"
  # One build per key at a time; a second run waits for the first and then finds the result.
  exec 9>"$CACHE/.lock-$key"
  flock 9
  if ! have_all; then
    version="$(cd "$MODULE" && GOFLAGS=-mod=readonly go list -m -f '{{.Version}}' github.com/fluxcd/flagger)"
    say "building flagger and loadtester $version into $BIN (minutes on a cold cache)"
    tmp="$BIN.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    started=$SECONDS
    (cd "$MODULE" && GOFLAGS=-mod=readonly nice -n 10 go build -trimpath -ldflags "$ldflags" -o "$tmp/" \
      github.com/fluxcd/flagger/cmd/flagger github.com/fluxcd/flagger/cmd/loadtester) \
      || { rm -rf "$tmp"; die "go build failed (see above)"; }
    rm -rf "$BIN"
    mv "$tmp" "$BIN"
    say "built in $((SECONDS - started)) s"
  fi
  exec 9>&-
fi
echo "$BIN"
