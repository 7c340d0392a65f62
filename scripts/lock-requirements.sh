#!/usr/bin/env bash
# Re-lock envbuild's own environment on purpose: resolve pyproject.toml's ranges (runtime +
# the `test` and `docs` extras) and the build backend into requirements/dev.txt, exact versions
# with sha256 hashes, for the Python that scripts/setup.sh insists on. Review the diff and commit it.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=.venv/bin/uv
[ -x "$UV" ] || UV=uv
"$UV" pip compile --quiet --generate-hashes --python-version 3.11 \
  --python-platform x86_64-manylinux_2_28 --extra test --extra docs \
  --custom-compile-command "bash scripts/lock-requirements.sh" \
  pyproject.toml requirements/build.in -o requirements/dev.txt
echo "lock-requirements: requirements/dev.txt updated; review and commit it"
