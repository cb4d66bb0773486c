#!/usr/bin/env bash
# A real Kubernetes control plane on 127.0.0.1 for tests: etcd, kube-apiserver and
# kube-controller-manager built from their Go modules (tools/kube-control-plane).
#
#   scripts/real-cluster.sh                  start it and stay in the foreground (Ctrl-C stops it)
#   scripts/real-cluster.sh COMMAND [ARG...] start it, run COMMAND with KUBECONFIG set, stop it,
#                                            exit with COMMAND's status
#   scripts/real-cluster.sh --build          only build (or find in the cache) and print the bin dir
#
# Every run has its own free ports, a temporary data directory and fresh certificates, so
# several runs can go at once. The binaries are cached under
# ${SERIN_CACHE_DIR:-~/.cache/serin}/kube-control-plane/<hash of the module's files and Go>/.
# What runs and why: docs/real-cluster.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODULE="$ROOT/tools/kube-control-plane"
CACHE="${SERIN_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/serin}/kube-control-plane"
# The version the binaries report (`kubectl version`, /version); it must match go.mod.
KUBE_VERSION="v1.37.2"
READY_TIMEOUT="${SERIN_REAL_CLUSTER_TIMEOUT:-180}"

say() { echo "real-cluster: $*" >&2; }
die() { say "$*"; exit 1; }

# ------------------------------------------------------------------------------------------
# Build (cached)

build() {
  command -v go >/dev/null 2>&1 || die "Go is not installed (needed to build the control plane)"
  command -v sha256sum >/dev/null 2>&1 || die "sha256sum is missing"
  local v=k8s.io/component-base/version
  local ldflags="-s -w -X $v.gitVersion=$KUBE_VERSION -X $v.gitMajor=${KUBE_VERSION:1:1}"
  ldflags+=" -X $v.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2) -X $v.gitTreeState=clean"
  local key
  key="$( (cd "$MODULE" && cat go.mod go.sum $(find cmd -name '*.go' | sort); go version; echo "$ldflags") \
    | sha256sum | cut -c1-16)"
  BIN="$CACHE/$key"
  local tools=(etcd kube-apiserver kube-controller-manager kcp-helper)
  have_all() { for t in "${tools[@]}"; do [ -x "$BIN/$t" ] || return 1; done; }
  if have_all; then return 0; fi
  mkdir -p "$CACHE"
  # One build per key at a time; a second run waits for the first and then finds the result.
  exec 9>"$CACHE/.lock-$key"
  flock 9
  if ! have_all; then
    say "building etcd, kube-apiserver and kube-controller-manager $KUBE_VERSION into $BIN (minutes on a cold cache)"
    local tmp="$BIN.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$tmp"
    local started=$SECONDS
    (cd "$MODULE" && GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath -ldflags "$ldflags" -o "$tmp/" ./cmd/...) \
      || { rm -rf "$tmp"; die "go build failed (see above)"; }
    rm -rf "$BIN"
    mv "$tmp" "$BIN"
    say "built in $((SECONDS - started)) s"
  fi
  exec 9>&-
}

# ------------------------------------------------------------------------------------------
# Start and stop

PIDS=()
DATA=""

stop_all() {
  local pid
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid="${PIDS[$i]}"
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}

cleanup() {
  stop_all
  if [ -n "$DATA" ] && [ -d "$DATA" ]; then
    if [ -n "${SERIN_REAL_CLUSTER_KEEP:-}" ]; then
      say "kept $DATA"
    else
      rm -rf "$DATA"
    fi
  fi
}

alive() { kill -0 "$1" 2>/dev/null; }

show_log() {
  say "last lines of $1:"
  tail -n 30 "$DATA/logs/$1.log" >&2 || true
}

# Waits until `$2...` succeeds, failing when process $1 exits or after READY_TIMEOUT seconds.
wait_until() {
  local pid="$1" what="$2"
  shift 2
  local deadline=$((SECONDS + READY_TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    alive "$pid" || { say "$what exited during start-up"; return 1; }
    [ $SECONDS -lt $deadline ] || { say "$what not ready after $READY_TIMEOUT s"; return 1; }
    sleep 0.3
  done
}

write_kubeconfig() {
  local file="$1" user="$2" server="$3"
  local b64="base64 -w0"
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: serin-real
  cluster:
    server: $server
    certificate-authority-data: $($b64 <"$DATA/pki/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $($b64 <"$DATA/pki/$user.crt")
    client-key-data: $($b64 <"$DATA/pki/$user.key")
contexts:
- name: serin-real
  context:
    cluster: serin-real
    user: $user
    namespace: default
current-context: serin-real
EOF
  chmod 600 "$file"
}

# Starts the three processes once; returns 2 when a port was taken meanwhile (worth a retry).
start_once() {
  local ports
  mapfile -t ports < <("$BIN/kcp-helper" ports 3)
  local etcd_client="${ports[0]}" etcd_peer="${ports[1]}" api="${ports[2]}"
  rm -rf "$DATA/etcd" "$DATA/logs"
  mkdir -p "$DATA/logs"

  "$BIN/etcd" --name=serin-real --data-dir="$DATA/etcd" \
    --listen-client-urls="http://127.0.0.1:$etcd_client" \
    --advertise-client-urls="http://127.0.0.1:$etcd_client" \
    --listen-peer-urls="http://127.0.0.1:$etcd_peer" \
    --initial-advertise-peer-urls="http://127.0.0.1:$etcd_peer" \
    --initial-cluster="serin-real=http://127.0.0.1:$etcd_peer" \
    --unsafe-no-fsync --log-level=warn >"$DATA/logs/etcd.log" 2>&1 &
  local etcd_pid=$!
  PIDS+=("$etcd_pid")
  if ! wait_until "$etcd_pid" etcd curl -sf "http://127.0.0.1:$etcd_client/health"; then
    grep -q 'address already in use' "$DATA/logs/etcd.log" && return 2
    show_log etcd
    return 1
  fi

  local pki="$DATA/pki"
  "$BIN/kube-apiserver" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api" \
    --etcd-servers="http://127.0.0.1:$etcd_client" \
    --cert-dir="$DATA/apiserver" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" \
    --service-account-signing-key-file="$pki/sa.key" \
    --service-cluster-ip-range=10.0.0.0/24 \
    --authorization-mode=Node,RBAC \
    --allow-privileged=true \
    --endpoint-reconciler-type=none \
    --profiling=false \
    >"$DATA/logs/kube-apiserver.log" 2>&1 &
  local api_pid=$!
  PIDS+=("$api_pid")
  local server="https://127.0.0.1:$api"
  readyz() {
    curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$server/readyz"
  }
  if ! wait_until "$api_pid" kube-apiserver readyz; then
    grep -q 'address already in use' "$DATA/logs/kube-apiserver.log" && return 2
    show_log kube-apiserver
    return 1
  fi
  write_kubeconfig "$DATA/admin.kubeconfig" admin "$server"
  write_kubeconfig "$DATA/controller-manager.kubeconfig" controller-manager "$server"

  # Only controllers that need no nodes or pods: no Deployment, ReplicaSet, DaemonSet or HPA
  # controller (Serin's workload simulator writes those statuses).
  local controllers=garbage-collector-controller,namespace-controller,serviceaccount-controller
  controllers+=,serviceaccount-token-controller,root-ca-certificate-publisher-controller
  controllers+=,clusterrole-aggregation-controller,service-cidr-controller
  "$BIN/kube-controller-manager" \
    --kubeconfig="$DATA/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$DATA/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$DATA/controller-manager.kubeconfig" \
    --controllers="$controllers" \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$pki/sa.key" \
    --root-ca-file="$pki/ca.crt" \
    --leader-elect=false --secure-port=0 --profiling=false \
    >"$DATA/logs/kube-controller-manager.log" 2>&1 &
  local kcm_pid=$!
  PIDS+=("$kcm_pid")
  # The service-account controller has run once the default namespace has its account.
  default_sa() {
    curl -sf --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" \
      "$server/api/v1/namespaces/default/serviceaccounts/default"
  }
  if ! wait_until "$kcm_pid" kube-controller-manager default_sa; then
    show_log kube-controller-manager
    return 1
  fi
  SERVER="$server"
  API_PID="$api_pid"
}

start() {
  DATA="$(mktemp -d "${TMPDIR:-/tmp}/serin-real-cluster.XXXXXX")"
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  "$BIN/kcp-helper" pki "$DATA/pki" || die "could not write certificates"
  local try rc
  for try in 1 2 3; do
    rc=0
    start_once || rc=$?
    [ $rc -eq 0 ] && return 0
    stop_all
    [ $rc -eq 2 ] || die "the control plane did not start (logs: $DATA/logs; SERIN_REAL_CLUSTER_KEEP=1 keeps them)"
    say "a port was taken meanwhile; trying again ($try)"
  done
  die "no free ports after 3 tries"
}

main() {
  if [ "${1:-}" = "--build" ]; then
    build
    echo "$BIN"
    return 0
  fi
  if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
    return 0
  fi
  build
  start
  local kubeconfig="$DATA/admin.kubeconfig"
  say "kube-apiserver $KUBE_VERSION ready at $SERVER"
  if [ $# -gt 0 ]; then
    local rc=0
    KUBECONFIG="$kubeconfig" "$@" || rc=$?
    exit "$rc"
  fi
  echo "KUBECONFIG=$kubeconfig"
  say "running in the foreground; Ctrl-C stops it"
  while alive "$API_PID"; do sleep 1; done
  die "kube-apiserver exited"
}

main "$@"
