#!/usr/bin/env bash
# NOT YET WIRED INTO `make down` OR VERIFIED END TO END (issue 6): the full-cluster version of down.sh.
# Stop what scripts/up.sh started, by the PIDs it recorded (never by name), after removing the
# workloads so their containers, mounts and pod networks are torn down by the agent.
set -uo pipefail
DATA_DIR=${1:?usage: down.sh DATA_DIR}
export KUBECONFIG="$DATA_DIR/kubeconfig"

running() { [ -f "$DATA_DIR/pids/$1" ] && kill -0 "$(cat "$DATA_DIR/pids/$1")" 2>/dev/null; }

stop() { # stop NAME: SIGTERM, then SIGKILL after 10 s
  local pidfile="$DATA_DIR/pids/$1"
  [ -f "$pidfile" ] || return 0
  local pid
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "stopped $1 (pid $pid)"
  fi
  rm -f "$pidfile"
}

if running apiserver && running agent && command -v kubectl >/dev/null; then
  echo "removing workloads (the agent stops their containers and pod networks)"
  kubectl delete deployments,replicasets,jobs,services --all --all-namespaces --wait=false >/dev/null 2>&1
  kubectl delete pods --all --all-namespaces --grace-period=5 --timeout=60s >/dev/null 2>&1 || true
fi

for name in agent controllers scheduler; do
  stop "$name"
done

# Containers the agent did not get to: kill and delete them through containerd itself, so no
# shim outlives `make down`.
SOCK="$DATA_DIR/containerd/containerd.sock"
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

# Anything a killed agent or containerd left behind under the data dir.
if [ -d "$DATA_DIR" ]; then
  grep " $DATA_DIR/" /proc/self/mounts | awk '{print $2}' | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null && echo "unmounted $m"
  done
fi
exit 0
