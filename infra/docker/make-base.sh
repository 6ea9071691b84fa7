#!/usr/bin/env bash
# A stand-in for the official python:3.11-slim-bookworm image, made from Debian packages, for
# machines that cannot pull from Docker Hub: debootstrap's minimal Debian bookworm, Debian's
# Python 3.11 (with venv), CA certificates, netbase and tzdata, imported with `podman import`.
# Python answers at the official image's paths (/usr/local/bin/python, python3, python3.11);
# pip is not installed system-wide (the Dockerfile makes its own virtual environment).
#
#   infra/docker/make-base.sh [IMAGE]      # default: localhost/airvoice-python:3.11-slim-bookworm
#   docker/podman build --build-arg BASE_IMAGE=IMAGE ...
#
# Does nothing when IMAGE already exists (remove it with `podman rmi IMAGE` to rebuild).
# Needs root, debootstrap and podman. DEBIAN_MIRROR picks the mirror (default deb.debian.org).
set -euo pipefail

image=${1:-localhost/airvoice-python:3.11-slim-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if podman image exists "$image"; then
  echo "base image $image exists: nothing to do"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "make-base.sh: debootstrap needs root; run it with sudo" >&2
  exit 1
fi
for tool in debootstrap podman tar; do
  command -v "$tool" >/dev/null || { echo "make-base.sh: $tool is not installed" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/airvoice-base.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/rootfs

echo "debootstrap bookworm (minbase + python3.11) from $mirror ..."
# python3-distutils is named because debootstrap does not resolve the virtual package
# python3.11-distutils that python3.11-venv depends on.
debootstrap --variant=minbase \
  --include=python3.11,python3.11-venv,python3-distutils,python3-lib2to3,ca-certificates,netbase,tzdata \
  bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  exit 1
}

# The official image's paths.
for name in python python3 python3.11; do
  ln -sf /usr/bin/python3.11 "$root/usr/local/bin/$name"
done
# What a slim image does not carry: package caches and lists, docs, man pages, logs.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
  "$root"/var/log/*.log "$root"/var/cache/debconf/*-old
# The image is anybody's: no trace of this machine's resolver or hostname.
: >"$root/etc/resolv.conf"
echo localhost >"$root/etc/hostname"

tar --numeric-owner --xattrs -C "$root" -c . |
  podman import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PYTHON_VERSION=3.11' \
    --change 'CMD ["python3"]' \
    --message "debootstrap bookworm minbase + python3.11 (stand-in for python:3.11-slim-bookworm)" \
    - "$image"
podman image ls "$image"
