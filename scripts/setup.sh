#!/usr/bin/env bash
# Install envbuild and its test tools from this checkout (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -e '.[test]'
