#!/usr/bin/env bash
# The whole test suite: static checks, then unit, integration (real kube-apiserver) tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/bootstrap.sh
echo "[test] ruff" >&2;          .venv/bin/ruff check operator tests
echo "[test] mypy" >&2;          .venv/bin/mypy
echo "[test] import-linter" >&2; .venv/bin/lint-imports
echo "[test] pytest" >&2;        exec .venv/bin/pytest "$@"
