"""Model files that PyPI packages ship in parts: find them, join them, check their sha256."""

from __future__ import annotations

import hashlib
import importlib.util
from collections.abc import Iterable
from pathlib import Path


class MissingTestModelError(RuntimeError):
    """A PyPI package holding test model data is not installed, or its data is not as expected."""


def package_dir(name: str) -> Path:
    """Where an installed package's files are, without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        pip_name = name.replace("_", "-")
        raise MissingTestModelError(
            f"the test model package {pip_name!r} is not installed; run `pip install {pip_name}` "
            "(or install airvoice's dev extra)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def assemble(target: Path, parts: Iterable[Path], sha256: str, reinstall_hint: str) -> Path:
    """Join ``parts`` into ``target`` unless it is already there with the right sha256.

    The parts are written to a ``.part`` file and moved into place only when the digest matches,
    so an interrupted or wrong assembly never leaves a file that looks complete.
    """
    if target.is_file() and file_sha256(target) == sha256:
        return target
    partial = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    with partial.open("wb") as out:
        for part in parts:
            blob = part.read_bytes()
            digest.update(blob)
            out.write(blob)
    if digest.hexdigest() != sha256:
        partial.unlink()
        raise MissingTestModelError(
            f"the parts do not make the expected {target.name} (sha256 mismatch); " + reinstall_hint
        )
    partial.replace(target)
    return target
