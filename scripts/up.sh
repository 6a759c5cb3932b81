#!/usr/bin/env bash
# Start a local skiff cluster under DATA_DIR: etcd, containerd (its own config, root and socket,
# so a system containerd is left alone), the apiserver, scheduler, controllers and one agent
# (with the service proxy and cluster DNS), as child processes whose PIDs are recorded for
# `make down`. Then load the demo image, apply manifests/demo.yaml and wait until the app
# answers. Running it again starts only what is not running.
#
# Settings (environment): SKIFF_BIN (directory of the binaries, default the release build in
# $CARGO_TARGET_DIR or target/),
# SKIFF_API_PORT (6443), SKIFF_ETCD_PORT (12379; the peer port is one above), SKIFF_AGENT_PORT
# (10250), SKIFF_SCHEDULER_PORT (10259), SKIFF_CONTROLLERS_PORT (10257), SKIFF_NODE_NAME
# (hostname), SKIFF_POD_CIDR (10.244.0.0/24), SKIFF_CLUSTER_CIDR (10.244.0.0/16), SKIFF_CNI_BRIDGE (skiff0), SKIFF_PROXY_PREFIX
# (SKIFF), SKIFF_DEMO (manifests/demo.yaml; "none" applies nothing).
set -euo pipefail
DATA_DIR=${1:?usage: up.sh DATA_DIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# The release build `make up` just made (cargo honours CARGO_TARGET_DIR, so must we).
BIN="${SKIFF_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release}"
API_PORT=${SKIFF_API_PORT:-6443}
ETCD_PORT=${SKIFF_ETCD_PORT:-12379}
AGENT_PORT=${SKIFF_AGENT_PORT:-10250}
SCHEDULER_PORT=${SKIFF_SCHEDULER_PORT:-10259}
CONTROLLERS_PORT=${SKIFF_CONTROLLERS_PORT:-10257}
NODE_NAME=${SKIFF_NODE_NAME:-$(hostname | tr '[:upper:]' '[:lower:]')}
POD_CIDR=${SKIFF_POD_CIDR:-10.244.0.0/24}
CLUSTER_CIDR=${SKIFF_CLUSTER_CIDR:-10.244.0.0/16}
BRIDGE=${SKIFF_CNI_BRIDGE:-skiff0}
PROXY_PREFIX=${SKIFF_PROXY_PREFIX:-SKIFF}
DEMO=${SKIFF_DEMO:-$ROOT/manifests/demo.yaml}

if [ "$(id -u)" != 0 ]; then
  echo "skiff: make up needs root: it installs packages, runs containerd and wires pod networks." >&2
  echo "       run it as root, e.g.: sudo make up" >&2
  exit 1
fi
for b in skiff-apiserver skiff-scheduler skiff-controllers skiff-agent skiffctl; do
  if [ ! -x "$BIN/$b" ]; then
    echo "skiff: $BIN/$b is missing; build it first (make release), or point SKIFF_BIN at the binaries." >&2
    exit 1
  fi
done
mkdir -p "$DATA_DIR/logs" "$DATA_DIR/pids" "$DATA_DIR/containerd"
DATA_DIR=$(cd "$DATA_DIR" && pwd)
SOCK="$DATA_DIR/containerd/containerd.sock"
KUBECONFIG="$DATA_DIR/kubeconfig"
export KUBECONFIG
PKI="$DATA_DIR/pki"
# The pod bridge's gateway: the cluster DNS listens there, where pods can reach it.
GATEWAY=$(echo "$POD_CIDR" | awk -F'[./]' '{print $1"."$2"."$3"."$4+1}')

say() { if [ -t 1 ]; then printf '\033[1m==> %s\033[0m\n' "$*"; else echo "==> $*"; fi; }
running() { [ -f "$DATA_DIR/pids/$1" ] && kill -0 "$(cat "$DATA_DIR/pids/$1")" 2>/dev/null; }
fail() {
  echo "skiff: $*" >&2
  echo "       logs are in $DATA_DIR/logs; stop what did start with: make down" >&2
  exit 1
}
wait_until() { # wait_until SECONDS DESCRIPTION COMMAND...
  local limit=$1 deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || fail "$what did not come up within $limit s"
    sleep 0.5
  done
}
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
start() { # start NAME PORT COMMAND...: run in the background, logging to logs/NAME.log
  local name=$1 port=$2
  shift 2
  if running "$name"; then
    echo "    $name is already running (pid $(cat "$DATA_DIR/pids/$name"))"
    return
  fi
  if [ "$port" != - ] && ! port_free "$port"; then
    fail "port $port, which $name needs, is taken by another program; free it or set the port variable listed at the top of scripts/up.sh"
  fi
  "$@" >"$DATA_DIR/logs/$name.log" 2>&1 &
  echo $! >"$DATA_DIR/pids/$name"
  echo "    started $name (pid $!, log $DATA_DIR/logs/$name.log)"
}
ctl() { "$BIN/skiffctl" "$@"; }

say "starting etcd on 127.0.0.1:$ETCD_PORT"
start etcd "$ETCD_PORT" etcd --name skiff --data-dir "$DATA_DIR/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
  --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
  --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
  --initial-cluster "skiff=http://127.0.0.1:$((ETCD_PORT + 1))" --log-level warn

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
start containerd - containerd --config "$DATA_DIR/containerd/config.toml"

wait_until 30 "etcd" curl -sf "http://127.0.0.1:$ETCD_PORT/health"
say "starting skiff-apiserver on https://127.0.0.1:$API_PORT (certificates in $PKI, Secrets encrypted with the key in $DATA_DIR/encryption-config.yaml)"
start apiserver "$API_PORT" "$BIN/skiff-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
  --port "$API_PORT" --cert-dir "$PKI" --encryption-provider-config "$DATA_DIR/encryption-config.yaml"
# /readyz is public; the CA it is checked against is the one the apiserver just created.
api_ready() { [ -f "$PKI/ca.crt" ] && curl -sf --cacert "$PKI/ca.crt" "https://127.0.0.1:$API_PORT/readyz"; }
wait_until 60 "skiff-apiserver" api_ready
# The admin's kubeconfig (system:admin in system:masters), for skiffctl and kubectl.
cp "$PKI/admin.kubeconfig" "$KUBECONFIG"
chmod 600 "$KUBECONFIG"

say "loading the demo image (built from Debian's busybox-static)"
wait_until 30 "containerd" test -S "$SOCK"
"$BIN/skiff-agent" build-busybox-image "$DATA_DIR/busybox.tar"
# Two tags of the same image, so that the tour's `set image` has a second one to roll out.
for tag in latest v2; do
  wait_until 30 "containerd" "$BIN/skiff-agent" --containerd-socket "$SOCK" \
    --containerd-namespace skiff load-image --name "skiff.local/busybox:$tag" "$DATA_DIR/busybox.tar"
done

say "starting the scheduler, the controllers and the agent of node $NODE_NAME"
# Each component has its own identity and only its ClusterRole's rights.
"$BIN/skiff-apiserver" kubeconfig --cert-dir "$PKI" --server "https://127.0.0.1:$API_PORT" \
  --user "system:node:$NODE_NAME" --group system:nodes >"$PKI/node-$NODE_NAME.kubeconfig"
chmod 600 "$PKI/node-$NODE_NAME.kubeconfig"
start scheduler "$SCHEDULER_PORT" "$BIN/skiff-scheduler" --kubeconfig "$PKI/scheduler.kubeconfig" \
  --port "$SCHEDULER_PORT"
start controllers "$CONTROLLERS_PORT" "$BIN/skiff-controllers" --kubeconfig "$PKI/controllers.kubeconfig" \
  --bind-address 127.0.0.1 --port "$CONTROLLERS_PORT"
start agent "$AGENT_PORT" "$BIN/skiff-agent" --kubeconfig "$PKI/node-$NODE_NAME.kubeconfig" --node-name "$NODE_NAME" \
  --containerd-socket "$SOCK" --containerd-namespace skiff --root-dir "$DATA_DIR/agent" \
  --pod-cidr "$POD_CIDR" --cni-bridge "$BRIDGE" --port "$AGENT_PORT" \
  --proxy --proxy-chain-prefix "$PROXY_PREFIX" --cluster-cidr "$CLUSTER_CIDR" \
  --dns-listen "$GATEWAY:53"
echo "$PROXY_PREFIX" >"$DATA_DIR/proxy-prefix"
echo "$BRIDGE" >"$DATA_DIR/cni-bridge"
wait_until 30 "skiff-scheduler" curl -sf "http://127.0.0.1:$SCHEDULER_PORT/healthz"
wait_until 30 "skiff-controllers" curl -sf "http://127.0.0.1:$CONTROLLERS_PORT/healthz"
node_ready() { ctl get node "$NODE_NAME" --no-headers | awk '{exit $2 == "Ready" ? 0 : 1}'; }
wait_until 60 "node $NODE_NAME (the agent)" node_ready

if [ "$DEMO" = none ]; then
  say "skiff is up (no demo applied)"
  echo "  export KUBECONFIG=$KUBECONFIG"
  exit 0
fi
say "applying $DEMO"
ctl apply -f "$DEMO"
say "waiting for the demo app"
ctl rollout status deployment/web --timeout=180s || fail "the demo app did not become available"
CLUSTER_IP=$(ctl get service web -o jsonpath='{.spec.clusterIP}')
wait_until 30 "the demo app through its Service (http://$CLUSTER_IP/)" curl -sf --max-time 2 "http://$CLUSTER_IP/"

cat <<EOF

skiff is up: node $NODE_NAME runs the demo app (3 busybox httpd pods behind Service web).

  export KUBECONFIG=$KUBECONFIG      # skiffctl and kubectl both use it
  export PATH=$BIN:\$PATH
  curl http://$CLUSTER_IP/                   # Service web answers with a pod's hostname
  skiffctl get pods -o wide

Try next:
  skiffctl scale deployment web --replicas=5
  skiffctl set image deployment/web httpd=skiff.local/busybox:v2
  skiffctl rollout status deployment/web
  skiffctl logs -l app=web
  skiffctl rollout undo deployment/web
  skiffctl delete -f manifests/demo.yaml

Stop everything with: make down
EOF
