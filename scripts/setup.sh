#!/usr/bin/env bash
# Create the project's virtual environment (.venv) and install envbuild (editable) with its test
# tools into it (idempotent). A virtual environment, not the system python3: Debian's and
# Ubuntu's system Pythons refuse pip installs (PEP 668).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv .venv >/dev/null 2>&1; then
    rm -rf .venv
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
      "$PY" -m venv .venv
    else
      echo "setup: '$PY -m venv' failed; install the venv module (Debian/Ubuntu: apt install python3-venv)" >&2
      exit 1
    fi
  fi
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
echo "setup: envbuild installed in .venv (activate it, or run .venv/bin/envbuild)"
