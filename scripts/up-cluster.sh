#!/usr/bin/env bash
# NOT YET WIRED INTO `make up` OR VERIFIED END TO END (issue 6): the full-cluster version of up.sh.
# Start a local skiff cluster under DATA_DIR: etcd, containerd (its own config, root and
# socket), the apiserver, scheduler, controllers and one agent, as child processes whose PIDs
# are recorded for `make down`. Then build and load the demo image, apply manifests/demo.yaml
# and wait until it is available. Safe to run twice.
set -euo pipefail
DATA_DIR=${1:?usage: up.sh DATA_DIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="${SKIFF_BIN:-$ROOT/target/release}"
API_PORT=${SKIFF_API_PORT:-6443}
ETCD_PORT=${SKIFF_ETCD_PORT:-2379}
AGENT_PORT=${SKIFF_AGENT_PORT:-10250}
NODE_NAME=${SKIFF_NODE_NAME:-$(hostname)}
POD_CIDR=${SKIFF_POD_CIDR:-10.244.0.0/24}
SOCK="$DATA_DIR/containerd/containerd.sock"

if [ "$(id -u)" != 0 ]; then
  echo "skiff: make up needs root: it installs packages, runs containerd and wires pod networks." >&2
  echo "       run: sudo make up" >&2
  exit 1
fi
mkdir -p "$DATA_DIR/logs" "$DATA_DIR/pids" "$DATA_DIR/containerd"

say() { if [ -t 1 ]; then printf '\033[1m==> %s\033[0m\n' "$*"; else echo "==> $*"; fi; }
running() { [ -f "$DATA_DIR/pids/$1" ] && kill -0 "$(cat "$DATA_DIR/pids/$1")" 2>/dev/null; }
wait_until() { # wait_until SECONDS DESCRIPTION COMMAND...
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      echo "skiff: $what did not come up in time; logs are in $DATA_DIR/logs" >&2
      exit 1
    fi
    sleep 0.5
  done
}
start() { # start NAME COMMAND...
  local name=$1; shift
  if running "$name"; then echo "    $name already running (pid $(cat "$DATA_DIR/pids/$name"))"; return; fi
  "$@" >"$DATA_DIR/logs/$name.log" 2>&1 &
  echo $! >"$DATA_DIR/pids/$name"
  echo "    started $name (pid $!, log $DATA_DIR/logs/$name.log)"
}

say "starting etcd"
start etcd etcd --name skiff --data-dir "$DATA_DIR/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
  --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
  --initial-cluster "skiff=http://127.0.0.1:$((ETCD_PORT + 1))" --log-level warn

wait_until 30 "etcd" curl -sf "http://127.0.0.1:$ETCD_PORT/health"

say "starting containerd (root $DATA_DIR/containerd)"
cat >"$DATA_DIR/containerd/config.toml" <<EOF
version = 2
root = "$DATA_DIR/containerd/root"
state = "$DATA_DIR/containerd/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "$SOCK"

[ttrpc]
  address = "$SOCK.ttrpc"

[plugins."io.containerd.internal.v1.opt"]
  path = "$DATA_DIR/containerd/opt"
EOF
start containerd containerd --config "$DATA_DIR/containerd/config.toml"

say "starting skiff-apiserver on 127.0.0.1:$API_PORT"
start apiserver "$BIN/skiff-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" --port "$API_PORT"
wait_until 60 "skiff-apiserver" curl -sf "http://127.0.0.1:$API_PORT/readyz"
wait_until 30 "containerd" test -S "$SOCK"

cat >"$DATA_DIR/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: skiff
  cluster:
    server: http://127.0.0.1:$API_PORT
contexts:
- name: skiff
  context:
    cluster: skiff
    user: skiff
    namespace: default
current-context: skiff
users:
- name: skiff
  user: {}
EOF
export KUBECONFIG="$DATA_DIR/kubeconfig"

say "starting scheduler, controllers and the agent for node $NODE_NAME"
start scheduler "$BIN/skiff-scheduler" --kubeconfig "$KUBECONFIG" --port 0
start controllers "$BIN/skiff-controllers" --kubeconfig "$KUBECONFIG" --port 0
start agent "$BIN/skiff-agent" --apiserver "http://127.0.0.1:$API_PORT" --node-name "$NODE_NAME" \
  --containerd-socket "$SOCK" --containerd-namespace skiff --pod-cidr "$POD_CIDR" \
  --root-dir "$DATA_DIR/agent" --port "$AGENT_PORT"

say "building and loading the demo image (busybox-static)"
"$BIN/skiff-agent" build-busybox-image "$DATA_DIR/busybox.tar" >/dev/null
"$BIN/skiff-agent" --containerd-socket "$SOCK" --containerd-namespace skiff load-image "$DATA_DIR/busybox.tar"

wait_until 60 "node $NODE_NAME" kubectl wait --for=condition=Ready "node/$NODE_NAME" --timeout=5s
say "applying manifests/demo.yaml"
kubectl apply -f "$ROOT/manifests/demo.yaml"
say "waiting for the demo app"
kubectl rollout status deployment/web --timeout=180s

ip=$(kubectl get svc web -o jsonpath='{.spec.clusterIP}')
pod_ip=$(kubectl get pods -l app=web -o jsonpath='{.items[0].status.podIP}')
cat <<EOF

skiff is up: $(kubectl get nodes --no-headers | wc -l) node, the demo app is available.

  export KUBECONFIG=$DATA_DIR/kubeconfig
  kubectl get pods -o wide
  curl http://$pod_ip:8080/          # a pod answers with its hostname
  # Service web has ClusterIP $ip (port 80)

Try next:
  kubectl scale deployment web --replicas=5
  kubectl set image deployment/web httpd=skiff.local/busybox:latest && kubectl rollout status deployment/web
  kubectl logs -l app=web
  kubectl rollout undo deployment/web
Stop everything with: make down
EOF
