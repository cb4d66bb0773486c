#!/usr/bin/env bash
# Prints the path of a helm binary: $HELM, else the one built from tools/helm (pinned in its
# go.mod), cached per go.sum under ~/.cache/serin-tools/ (the first build takes minutes).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ -n "${HELM:-}" ]]; then echo "$HELM"; exit 0; fi
key=$(cat tools/helm/go.sum tests/packaging/helm.sh | sha256sum | cut -c1-16)
cache=${SERIN_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/serin-tools}/helm-$key
if [[ ! -x $cache/helm ]]; then
  echo "== building helm from tools/helm (once per go.sum; takes minutes)" >&2
  mkdir -p "$cache"
  (cd tools/helm \
    && v=$(go list -m -f '{{.Version}}' helm.sh/helm/v3) \
    && go build -trimpath -ldflags "-X helm.sh/helm/v3/internal/version.version=$v" \
      -o "$cache/helm.tmp.$$" helm.sh/helm/v3/cmd/helm) >&2
  mv "$cache/helm.tmp.$$" "$cache/helm"
fi
echo "$cache/helm"
