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
# the workflow `envbuild init --ci` hands every team: no zizmor finding of medium or higher
# (tests/test_schedule.py also checks the variants with a publish job, and runs actionlint)
workflow_dir=$(mktemp -d)
(cd "$workflow_dir" && "$OLDPWD/.venv/bin/envbuild" init --ci >/dev/null)
.venv/bin/zizmor --offline --no-progress --min-severity medium "$workflow_dir/.github/workflows"
rm -rf "$workflow_dir"
"$PY" -m pytest "$@"
