#!/usr/bin/env bash
# Installs what the demo and the tests need, idempotently: a virtualenv with the Python
# dependencies, and the control-plane binaries (built from Go modules once, then cached
# under ~/.cache/tenant-enforcer/<component>-<version>/).
set -euo pipefail
cd "$(dirname "$0")/.."

need() { command -v "$1" >/dev/null 2>&1; }
if ! need python3 || ! python3 -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  if need apt-get; then
    echo "[bootstrap] installing python3 and python3-venv with apt-get" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
  fi
fi
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "Python >= 3.11 is required" >&2; exit 1; }

# The virtualenv is refreshed when pyproject.toml changes.
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "[bootstrap] creating .venv and installing tenant-enforcer with its dev extras" >&2
  python3 -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[dev]'
  rm -f .venv/.installed-* && touch "$stamp"
fi

# kube-apiserver & co. are built from the Go module proxy: Go must be there (it is on our
# machines; KUBEBUILDER_ASSETS may point at prebuilt envtest binaries instead).
if ! need go && [ -z "${KUBEBUILDER_ASSETS:-}" ]; then
  echo "The Go toolchain (>= 1.25) is needed to build the local control plane, or set" >&2
  echo "KUBEBUILDER_ASSETS to a directory holding kube-apiserver, etcd and kubectl." >&2
  exit 1
fi
.venv/bin/python -m tenant_enforcer.devcluster.build
