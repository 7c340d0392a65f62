#!/usr/bin/env bash
# Create the project's virtual environment (.venv) and install envbuild (editable) with its test
# tools into it (idempotent). A virtual environment, not the system python3: Debian's and
# Ubuntu's system Pythons refuse pip installs (PEP 668).
#
# What is installed is the committed lock requirements/dev.txt (exact versions, sha256 hashes;
# re-lock on purpose with scripts/lock-requirements.sh), never "the newest the ranges in
# pyproject.toml allow". The lock and the demo channel's pins (pins/*.txt) are made for
# Python 3.11: setup picks a Python 3.11 ($PYTHON, else python3.11, else python3) or stops.
set -euo pipefail
cd "$(dirname "$0")/.."
WANT=3.11
version_of() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true; }
if [ -n "${PYTHON:-}" ]; then
  PY=$PYTHON
  got=$(version_of "$PY")
  if [ -z "$got" ]; then
    echo "setup: PYTHON=$PY does not run (not installed, or a pyenv shim of a version not enabled); requirements/dev.txt and pins/*.txt are pinned for Python $WANT: use PYTHON=python$WANT" >&2
    exit 1
  fi
  if [ "$got" != "$WANT" ]; then
    echo "setup: PYTHON=$PY is Python $got, but requirements/dev.txt and pins/*.txt are pinned for Python $WANT: use PYTHON=python$WANT" >&2
    exit 1
  fi
else
  PY=
  for candidate in "python$WANT" python3 python; do
    if command -v "$candidate" >/dev/null && [ "$(version_of "$candidate")" = "$WANT" ]; then
      PY=$candidate
      break
    fi
  done
  if [ -z "$PY" ]; then
    echo "setup: no Python $WANT found (python3 is Python $(version_of python3)); requirements/dev.txt and pins/*.txt are pinned for $WANT: install python$WANT or set PYTHON=/path/to/python$WANT" >&2
    exit 1
  fi
fi
if [ -x .venv/bin/python ] && [ "$(version_of .venv/bin/python)" != "$WANT" ]; then
  echo "setup: .venv is Python $(version_of .venv/bin/python), not $WANT: remove it (rm -rf .venv) and run setup again" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  if ! "$PY" -m venv .venv >/dev/null 2>&1; then
    rm -rf .venv
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "python$WANT-venv" >/dev/null ||
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
      "$PY" -m venv .venv
    else
      echo "setup: '$PY -m venv' failed; install the venv module (Debian/Ubuntu: apt install python3-venv)" >&2
      exit 1
    fi
  fi
fi
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${PIP[@]}" --require-hashes -r requirements/dev.txt
"${PIP[@]}" --no-deps --no-build-isolation -e .
echo "setup: envbuild installed in .venv from requirements/dev.txt (Python $WANT; activate it, or run .venv/bin/envbuild)"
