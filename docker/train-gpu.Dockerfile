# GPU variant of the training image (NOT built or run by this project's tests: no GPU or Docker
# engine there). CUDA 12 runtime base, CUDA torch, faiss-gpu instead of faiss-cpu.
#   docker build -f docker/train-gpu.Dockerfile -t hashrec-train-gpu:local .
#   docker run --rm --gpus all -v hashrec_store:/store -v hashrec_data:/data hashrec-train-gpu:local \
#     hashrec index --data /data/generated.csv --store /store --device cuda
# Needs the NVIDIA Container Toolkit on the host. In docker-compose.yml, point the `indexer`
# service at this file and add
#     deploy: {resources: {reservations: {devices: [{driver: nvidia, count: 1, capabilities: [gpu]}]}}}

ARG CUDA_IMAGE=nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04

FROM ${CUDA_IMAGE} AS build
ENV DEBIAN_FRONTEND=noninteractive PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends software-properties-common \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
 && rm -rf /var/lib/apt/lists/*
RUN python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
ARG TORCH_VERSION=2.13.0
# PyPI's Linux torch wheel is the CUDA build (it brings its CUDA runtime as nvidia-* wheels), so no
# extra index: download.pytorch.org builds only a few CUDA versions per release, 12.4 no longer.
RUN pip install "torch==${TORCH_VERSION}"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY hashrec hashrec
COPY retrieval retrieval
COPY indexer indexer
COPY model_store model_store
COPY service service
COPY loadtest loadtest
# faiss-gpu (the `gpu` extra) provides the same `faiss` module as faiss-cpu, with GPU indexes;
# faiss-cpu goes first so that its removal cannot delete files the two share
RUN pip install ".[train]" && pip uninstall -y faiss-cpu && pip install "faiss-gpu>=1.8"

FROM ${CUDA_IMAGE} AS train-gpu
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends software-properties-common \
 && add-apt-repository -y ppa:deadsnakes/ppa \
 && apt-get install -y --no-install-recommends python3.11 \
 && apt-get purge -y software-properties-common && apt-get autoremove -y \
 && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 hashrec \
 && useradd --system --uid 10001 --gid hashrec --home-dir /home/hashrec --create-home hashrec \
 && mkdir -p /store /data && chown hashrec:hashrec /store /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 HASHREC_STORE=/store
WORKDIR /home/hashrec
USER hashrec
CMD ["hashrec", "index", "--help"]
