#!/usr/bin/env bash
# Stop what scripts/up.sh started, by the PIDs it recorded (never by name).
set -uo pipefail
DATA_DIR=${1:?usage: down.sh DATA_DIR}
for name in apiserver etcd; do
  pidfile="$DATA_DIR/pids/$name"
  [ -f "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "stopped $name (pid $pid)"
  fi
  rm -f "$pidfile"
done
