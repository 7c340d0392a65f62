#!/usr/bin/env bash
# Install, start the machine services the image tests use, lint, type-check and run the whole
# test suite (slow end-to-end, kill -9 and image tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/services.sh
PY=.venv/bin/python  # made by scripts/setup.sh
"$PY" -m ruff check envbuild tests dodo.py benchmarks
"$PY" -m mypy
"$PY" -m pytest "$@"
