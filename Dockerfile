# airvoice: the voice server for an NVIDIA GPU pod (L4 and up), and the prefetch pod's tool.
#
#   docker build -t airvoice .
#   docker run --gpus all -p 8000:8000 -v airvoice-hf:/workspace airvoice            # serve
#   docker run -e HF_TOKEN -e HF_HUB_OFFLINE=0 -v airvoice-hf:/workspace airvoice models prefetch
#
# CUDA comes from the PyTorch CUDA wheel (it ships its own CUDA runtime, cuBLAS and cuDNN), on a
# Debian slim Python base: no second copy of CUDA from an nvidia/cuda base. The GPU driver is the
# host's, mounted in by the NVIDIA container runtime. See docs/deploy.md ("The image").

ARG PYTHON_VERSION=3.11

# ---- build: a virtual environment with everything installed --------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build

ARG TORCH_VERSION=2.13.0
ARG TORCH_CUDA=cu128
ARG SPACY_MODEL_VERSION=3.8.0
# The server with vLLM's CUDA build (the batched Ultravox engine, chosen by --engine auto on a
# GPU); a CPU-only build passes --build-arg AIRVOICE_EXTRAS=server.
ARG AIRVOICE_EXTRAS=server,vllm

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PATH=/opt/airvoice/bin:$PATH

# 1. The largest and least often changed layer: torch built for CUDA 12 (with its CUDA libraries).
RUN python -m venv /opt/airvoice \
    && pip install --index-url "https://download.pytorch.org/whl/${TORCH_CUDA}" \
        "torch==${TORCH_VERSION}"

# 2. airvoice's dependencies, from pyproject.toml alone (this layer is reused until they change),
#    and spaCy's official English model for misaki's G2P, so that nothing downloads it at run time.
#    The project's own pins are in pyproject.toml; the model's version is in its URL.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY airvoice/__init__.py airvoice/__init__.py
# hadolint ignore=DL3013
RUN pip install ".[${AIRVOICE_EXTRAS}]" \
    && pip install "https://github.com/explosion/spacy-models/releases/download/en_core_web_sm-${SPACY_MODEL_VERSION}/en_core_web_sm-${SPACY_MODEL_VERSION}-py3-none-any.whl"

# 3. The code itself, the layer that changes most often (dependencies are already in place).
COPY airvoice airvoice
RUN pip install --no-deps --force-reinstall . \
    && python -c "import spacy; spacy.load('en_core_web_sm')" \
    && python -c "import airvoice.server.app, airvoice.pipeline, airvoice.engines.kokoro"

# ---- runtime: the environment, a non-root user, offline serving ----------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="airvoice" \
      org.opencontainers.image.description="Private low-latency voice assistant: Ultravox + Kokoro-82M over a secure WebSocket" \
      org.opencontainers.image.licenses="Apache-2.0"

RUN useradd --create-home --uid 1000 --shell /bin/bash airvoice \
    && mkdir -p /workspace/hf \
    && chown -R airvoice:airvoice /workspace

COPY --from=build /opt/airvoice /opt/airvoice
COPY infra/docker/healthcheck.py /opt/airvoice/healthcheck.py

# NVIDIA_*: what the NVIDIA container runtime mounts in (an nvidia/cuda base sets these too).
# HF_HUB_OFFLINE=1: serving never reaches the hub; the prefetch pod sets HF_HUB_OFFLINE=0.
ENV PATH=/opt/airvoice/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    HF_HOME=/workspace/hf \
    HF_HUB_OFFLINE=1 \
    HF_HUB_DISABLE_TELEMETRY=1 \
    AIRVOICE_HOST=0.0.0.0 \
    AIRVOICE_PORT=8000

USER 1000:1000
WORKDIR /home/airvoice
EXPOSE 8000

# Loading an 8B model from a network volume takes minutes: a long start period.
HEALTHCHECK --interval=30s --timeout=5s --start-period=600s --retries=3 \
    CMD ["python", "/opt/airvoice/healthcheck.py"]

ENTRYPOINT ["airvoice"]
CMD ["serve"]
