#!/usr/bin/env bash
# The main job, offline, on real packages: build the local channel (this interpreter + PyPI
# wheels of numpy, pandas, scikit-learn), then lock, build, smoke-test, pack recipes/ml.yml,
# render its Dockerfile and (with a Docker engine: scripts/services.sh starts one as root)
# build the image and run the smoke checks inside it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/services.sh
ENVBUILD=.venv/bin/envbuild  # the installed command (scripts/setup.sh); `doit ...` works too
"$ENVBUILD" offline_channel
"$ENVBUILD" docker ml
echo
echo "demo done: $(ls -1 locks/ml.conda-lock.yml dist/ml-*.tar.* docker/ml/Dockerfile | tr '\n' ' ')"
