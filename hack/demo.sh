#!/usr/bin/env bash
# The main job: a local control plane, the operator, and the worked example (see README).
# Pass --keep to leave everything running afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
bash hack/bootstrap.sh
exec .venv/bin/tenant-enforcer demo "$@"
