# The serving image (no torch) and, as target `loadtest`, the Locust image.
#   docker build -f docker/serve.Dockerfile --target serve -t hashrec-serve:local .
#   docker build -f docker/serve.Dockerfile --target loadtest -t hashrec-loadtest:local .
# The base image is pinned to an exact Python patch release; to pin it by content too, build with
#   --build-arg PYTHON_IMAGE=python:3.11.7-slim-bookworm@sha256:<digest from `docker pull`>

ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

# ---- build: install the package and its extras into a virtual environment ----
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY hashrec hashrec
COPY retrieval retrieval
COPY indexer indexer
COPY model_store model_store
COPY service service
COPY loadtest loadtest

FROM build AS build-serve
RUN pip install ".[serve]"

FROM build AS build-loadtest
# the `load` extra: locust and matplotlib (see the README's "Run the stack")
RUN pip install ".[load]"

# ---- runtime: the virtual environment only, run as an unprivileged user ----
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 hashrec \
 && useradd --system --uid 10001 --gid hashrec --home-dir /home/hashrec --create-home hashrec \
 && mkdir -p /store /data /results \
 && chown hashrec:hashrec /store /data /results
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    HASHREC_STORE=/store
WORKDIR /home/hashrec

FROM runtime AS loadtest
COPY --from=build-loadtest /opt/venv /opt/venv
USER hashrec
CMD ["hashrec", "loadtest", "--help"]

# last, so that a plain `docker build -f docker/serve.Dockerfile .` builds the serving image
FROM runtime AS serve
COPY --from=build-serve /opt/venv /opt/venv
# The kernels compiled now, in this stage (the paths and file times numba's cache checks are the
# container's), on the golden stores of every layout; the entrypoint copies them onto /tmp.
COPY tests/fixtures/golden/store /opt/warmup/golden
COPY tests/fixtures/golden-walk/store /opt/warmup/golden-walk
RUN NUMBA_CACHE_DIR=/opt/numba-cache python -m hashrec.service.warmup /opt/warmup/golden /opt/warmup/golden-walk \
 && rm -rf /opt/warmup
COPY docker/serve-entrypoint.sh /usr/local/bin/hashrec-entrypoint
ENTRYPOINT ["hashrec-entrypoint"]
# Compiled numba kernels and versions downloaded from S3 go under /tmp, which stays writable when the
# root filesystem is read-only (docker-compose.yml: tmpfs); the workers of a container share both.
ENV NUMBA_CACHE_DIR=/tmp/numba \
    HASHREC_STORE_CACHE=/tmp/hashrec-store-cache
USER hashrec
EXPOSE 8000
CMD ["hashrec", "serve", "--store", "/store", "--host", "0.0.0.0", "--port", "8000"]
