#!/bin/sh
# The serving image's entrypoint: seed numba's cache (NUMBA_CACHE_DIR, on the writable /tmp) with the
# kernels compiled when the image was built (/opt/numba-cache), then run the command. Without it
# every container start compiled them again in every worker (28 s on 2 cores before the first answer).
set -e
if [ -n "${NUMBA_CACHE_DIR:-}" ] && [ -d /opt/numba-cache ] && [ ! -d "$NUMBA_CACHE_DIR" ]; then
  if ! mkdir -p "$NUMBA_CACHE_DIR" 2>/dev/null; then
    echo "hashrec-entrypoint: NUMBA_CACHE_DIR=$NUMBA_CACHE_DIR is not writable (mount a tmpfs on /tmp)" >&2
    exit 1
  fi
  cp -R /opt/numba-cache/. "$NUMBA_CACHE_DIR/"
fi
exec "$@"
