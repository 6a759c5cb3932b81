# skiff: the two commands a user needs are `make up` and `make test`.

SHELL := /bin/bash
DATA_DIR ?= $(CURDIR)/.skiff
CARGO ?= cargo

# Debian packages skiff uses: etcd (store), protoc (etcd-client's build), containerd + runc
# (agent), CNI plugins, busybox-static (test and demo image), iptables (service proxy), and an
# OCI registry for pull tests.
DEB_PACKAGES := etcd-server etcd-client protobuf-compiler containerd runc \
	containernetworking-plugins busybox-static iptables docker-registry

.PHONY: deps build release test lint bench up down status clean

## Install the system packages (idempotent; needs root).
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then echo "make deps: missing packages:$$missing; run as root (sudo make deps)"; exit 1; fi; \
		echo "installing:$$missing"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	else echo "all system packages present"; fi
	@command -v kubectl >/dev/null || echo "note: kubectl is not installed; the kubectl compatibility tests need it"

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --workspace --release

## Run every test: unit tests and end-to-end tests against a real etcd (started per test).
test: deps
	$(CARGO) test --workspace --locked

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

bench: deps
	$(CARGO) bench -p skiff-testkit --bench apiserver
	$(CARGO) bench -p skiff-testkit --bench scheduler

## Start a local cluster under $(DATA_DIR) and apply the demo app.
up: deps release
	@scripts/up.sh "$(DATA_DIR)"

## Stop everything `make up` started.
down:
	@scripts/down.sh "$(DATA_DIR)"

status:
	@KUBECONFIG="$(DATA_DIR)/kubeconfig" kubectl get all -A

clean: down
	rm -rf "$(DATA_DIR)"
