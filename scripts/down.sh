#!/usr/bin/env bash
# Stop what scripts/up.sh started, by the PIDs it recorded (never by name): first the
# workloads, so that the agent tears down their containers, mounts and pod networks, then the
# components, then whatever a killed agent or containerd left behind under DATA_DIR (tasks,
# mounts, the service proxy's chains, the pod bridge). Harmless when nothing runs.
set -uo pipefail
DATA_DIR=${1:?usage: down.sh DATA_DIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# The release build `make up` just made (cargo honours CARGO_TARGET_DIR, so must we).
BIN="${SKIFF_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release}"
[ -d "$DATA_DIR" ] || { echo "nothing to stop: $DATA_DIR does not exist"; exit 0; }
DATA_DIR=$(cd "$DATA_DIR" && pwd)
export KUBECONFIG="$DATA_DIR/kubeconfig"
SOCK="$DATA_DIR/containerd/containerd.sock"

if [ "$(id -u)" != 0 ]; then
  echo "skiff: make down needs root, like make up: run it as root, e.g.: sudo make down" >&2
  exit 1
fi

running() { [ -f "$DATA_DIR/pids/$1" ] && kill -0 "$(cat "$DATA_DIR/pids/$1")" 2>/dev/null; }
stop() { # stop NAME: SIGTERM, then SIGKILL after 15 s
  local pidfile="$DATA_DIR/pids/$1" pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
    echo "stopped $1 (pid $pid)"
  fi
  rm -f "$pidfile"
}

if running apiserver && running agent && [ -x "$BIN/skiffctl" ]; then
  echo "removing workloads (the agent stops their containers and pod networks)"
  "$BIN/skiffctl" delete deployments,replicasets,jobs,services --all -A >/dev/null 2>&1
  "$BIN/skiffctl" delete pods --all -A --grace-period=5 --wait --timeout=60s >/dev/null 2>&1 ||
    echo "some pods did not go away in time; removing their containers directly"
fi

for name in agent controllers scheduler; do
  stop "$name"
done

# Tasks the agent did not get to: kill and delete them through containerd itself, so no shim
# outlives `make down`.
if running containerd && [ -S "$SOCK" ]; then
  for ns in $(ctr -a "$SOCK" namespaces ls -q 2>/dev/null); do
    for task in $(ctr -a "$SOCK" -n "$ns" tasks ls -q 2>/dev/null); do
      ctr -a "$SOCK" -n "$ns" tasks kill -s SIGKILL "$task" >/dev/null 2>&1
      ctr -a "$SOCK" -n "$ns" tasks delete -f "$task" >/dev/null 2>&1 && echo "removed leftover task $task"
    done
    for c in $(ctr -a "$SOCK" -n "$ns" containers ls -q 2>/dev/null); do
      ctr -a "$SOCK" -n "$ns" containers delete "$c" >/dev/null 2>&1
    done
  done
fi

for name in containerd apiserver etcd; do
  stop "$name"
done

# The service proxy's chains, pod sandboxes the agent did not tear down (CNI DEL), and the
# pod network's rules for the bridge.
if [ -f "$DATA_DIR/proxy-prefix" ] && [ -f "$DATA_DIR/cni-bridge" ] && [ -x "$BIN/skiff-agent" ]; then
  "$BIN/skiff-agent" --cleanup --proxy-chain-prefix "$(cat "$DATA_DIR/proxy-prefix")" \
    --cni-bridge "$(cat "$DATA_DIR/cni-bridge")" --root-dir "$DATA_DIR/agent" \
    >>"$DATA_DIR/logs/cleanup.log" 2>&1 && rm -f "$DATA_DIR/proxy-prefix"
fi

# Mounts under the data dir (rootfs snapshots, pod network namespaces, volumes), deepest first.
grep " $DATA_DIR/" /proc/self/mounts | awk '{print $2}' | sort -r | while read -r m; do
  umount -l "$m" 2>/dev/null && echo "unmounted $m"
done

# The pod bridge the CNI bridge plugin created, once no pod is attached to it.
if [ -f "$DATA_DIR/cni-bridge" ]; then
  bridge=$(cat "$DATA_DIR/cni-bridge")
  if ip link show "$bridge" >/dev/null 2>&1; then
    ip link delete "$bridge" && echo "removed bridge $bridge"
  fi
  rm -f "$DATA_DIR/cni-bridge"
fi
exit 0
