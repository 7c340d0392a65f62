#!/usr/bin/env bash
# Usage: bash scripts/test.sh [--fast] [PYTEST ARGS...]
#
# Without --fast (what CI runs, .ci/run): install, start the machine services the image tests use,
# lint, type-check and run the whole test suite (tests/unit and tests/integration: slow end-to-end,
# kill -9, image, registry and conda tests included). With no PYTEST ARGS the suite runs on
# $ENVBUILD_TEST_WORKERS pytest-xdist workers (default 2; 1 runs it in one process), then the
# tests marked `serial` alone; with PYTEST ARGS, one plain `pytest PYTEST ARGS`.
#
# --fast: the inner loop, no apt, no engine, no registry: ruff, mypy, the docs site's strict
# build (mkdocs, under a second) and the unit tier (tests/unit, in-process only) on the
# existing .venv (scripts/setup.sh runs only if there is none). About a minute on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python  # made by scripts/setup.sh
# the docs site (mkdocs.yml): a missing page or anchor fails it; the reference is generated
docs() {
    if ! "$PY" -c "import mkdocs, material" 2>/dev/null; then
        echo "test.sh: mkdocs-material is not in .venv (an older one): run bash scripts/setup.sh" >&2
        return 1
    fi
    # not --quiet: it drops warnings before strict mode counts them, so a broken link passed
    local out
    if ! out=$(NO_MKDOCS_2_WARNING=1 "$PY" -m mkdocs build --strict 2>&1); then
        printf '%s\n' "$out" | grep -v '^INFO ' >&2
        return 1
    fi
}

if [[ "${1:-}" == "--fast" ]]; then
    shift
    [[ -x "$PY" ]] || bash scripts/setup.sh
    "$PY" -m ruff check envbuild tests dodo.py benchmarks docs
    "$PY" -m mypy
    docs
    exec "$PY" -m pytest tests/unit "$@"
fi

bash scripts/setup.sh
bash scripts/services.sh
"$PY" -m ruff check envbuild tests dodo.py benchmarks docs
"$PY" -m mypy
docs
# the workflow `envbuild init --ci` hands every team: no zizmor finding of medium or higher
# (tests/integration/test_schedule.py also checks the variants with a publish job, and runs actionlint)
workflow_dir=$(mktemp -d)
(cd "$workflow_dir" && "$OLDPWD/.venv/bin/envbuild" init --ci >/dev/null)
.venv/bin/zizmor --offline --no-progress --min-severity medium "$workflow_dir/.github/workflows"
rm -rf "$workflow_dir"
workers=${ENVBUILD_TEST_WORKERS:-2}
if [[ $# -gt 0 || "$workers" == 1 ]]; then
    exec "$PY" -m pytest "$@"
fi
# a file per worker; tests/conftest.py makes the Docker engine's tests take turns
"$PY" -m pytest -n "$workers" --dist loadfile -m "not serial" --durations=25
"$PY" -m pytest -m serial
