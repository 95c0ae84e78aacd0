#!/usr/bin/env bash
# Stand-in base images for machines that cannot pull from Docker Hub, built from Debian's packages:
#   hashrec-local/debian:bookworm   debootstrap --variant=minbase, imported
#   hashrec-local/python:3.11       Debian's python3, venv, pip (docker/local/python.Dockerfile)
#   hashrec-local/redis:7           Debian's redis-server (docker/local/redis.Dockerfile)
# and, when pip finds a torch wheel on this machine without an index, a copy of it in
# docker/wheels/ for the train image. Progress goes to stderr; stdout is the variables to export:
#   eval "$(bash docker/local-images.sh)" && docker compose up --build
# The real images stay the default: without these variables compose uses them.
# Needs root (debootstrap), debootstrap and a running Docker engine. Rerunning reuses the images that
# exist (HASHREC_REBUILD_LOCAL=1 rebuilds them; a rebuilt base invalidates the project's build cache).
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=${TORCH_VERSION:-2.13.0}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${HASHREC_IMAGE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hashrec-images}
BASE=hashrec-local/debian:bookworm
PYTHON=hashrec-local/python:3.11
REDIS=hashrec-local/redis:7

say() { printf 'local-images: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "debootstrap needs root; run as root (or pull the real images instead)"
command -v debootstrap >/dev/null || die "debootstrap is missing (Debian/Ubuntu: apt-get install debootstrap)"
docker info >/dev/null 2>&1 || die "no Docker engine answers (start dockerd first)"

if docker image inspect "$BASE" >/dev/null 2>&1; then
  say "$BASE exists"
else
  if [ ! -x "$CACHE/rootfs/bin/sh" ]; then
    say "debootstrap bookworm into $CACHE/rootfs (about a minute)"
    rm -rf "$CACHE/rootfs" && mkdir -p "$CACHE"
    debootstrap --variant=minbase bookworm "$CACHE/rootfs" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
      || die "debootstrap failed: see $CACHE/debootstrap.log"
  fi
  say "importing $BASE"
  tar -C "$CACHE/rootfs" -c . | docker import - "$BASE" >/dev/null
fi

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/ca-certificates"
# the machine's own extra authorities (Debian's place for them); none is fine
cp /usr/local/share/ca-certificates/*.crt "$context/ca-certificates/" 2>/dev/null || true

# build_stand_in IMAGE DOCKERFILE: build it on the base unless it exists (HASHREC_REBUILD_LOCAL=1: always)
build_stand_in() {
  if [ -z "${HASHREC_REBUILD_LOCAL:-}" ] && docker image inspect "$1" >/dev/null 2>&1; then
    say "$1 exists"
    return
  fi
  say "building $1"
  docker build -q --build-arg BASE="$BASE" -t "$1" -f "$2" "$context" >/dev/null 2>"$context/build.log" \
    || { cat "$context/build.log" >&2; die "building $1 failed"; }
}
build_stand_in "$PYTHON" docker/local/python.Dockerfile
build_stand_in "$REDIS" docker/local/redis.Dockerfile

wheel=""
if pip download --no-deps --no-index --quiet "torch==${TORCH_VERSION}" -d docker/wheels >/dev/null 2>&1; then
  wheel=$(cd docker/wheels && ls -t torch-"${TORCH_VERSION}"*.whl | head -n 1)
  say "torch wheel for the train image: docker/wheels/$wheel"
else
  say "no local torch ${TORCH_VERSION} wheel: the train image will use the CPU index"
fi

echo "export HASHREC_PYTHON_IMAGE=$PYTHON"
echo "export HASHREC_REDIS_IMAGE=$REDIS"
[ -z "$wheel" ] || echo "export HASHREC_TORCH_WHEEL=$wheel"
