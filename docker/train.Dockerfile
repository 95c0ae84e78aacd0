# The training image: CPU torch plus the `train` extra; runs `hashrec generate` and `hashrec index`.
#   docker build -f docker/train.Dockerfile -t hashrec-train:local .
# For NVIDIA GPUs see docker/train-gpu.Dockerfile.

ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# torch first, from the CPU-only index (the default index would pull the CUDA build, ~10x larger),
# or, with TORCH_WHEEL set, from that wheel file in docker/wheels/ (machines that cannot reach the
# index: docker/local-images.sh puts the machine's wheel there); its dependencies come from PyPI.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ARG TORCH_WHEEL=
COPY docker/wheels/ /tmp/wheels/
RUN if [ -n "${TORCH_WHEEL}" ]; then \
      pip install "/tmp/wheels/${TORCH_WHEEL}"; \
    else \
      pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"; \
    fi \
 && rm -rf /tmp/wheels
WORKDIR /src
COPY pyproject.toml README.md ./
COPY hashrec hashrec
COPY retrieval retrieval
COPY indexer indexer
COPY model_store model_store
COPY service service
COPY loadtest loadtest
RUN pip install ".[train]"

FROM ${PYTHON_IMAGE} AS train
RUN groupadd --system --gid 10001 hashrec \
 && useradd --system --uid 10001 --gid hashrec --home-dir /home/hashrec --create-home hashrec \
 && mkdir -p /store /data \
 && chown hashrec:hashrec /store /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MPLCONFIGDIR=/tmp/matplotlib \
    HASHREC_STORE=/store
WORKDIR /home/hashrec
USER hashrec
CMD ["hashrec", "index", "--help"]
