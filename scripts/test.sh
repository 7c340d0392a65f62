#!/usr/bin/env bash
# Install, lint, type-check and run the whole test suite (slow end-to-end tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
PY=${PYTHON:-python3}
"$PY" -m ruff check envbuild tests dodo.py benchmarks
"$PY" -m mypy
"$PY" -m pytest "$@"
