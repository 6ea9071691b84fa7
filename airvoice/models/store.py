"""Where weights live on disk: the Hugging Face cache layout, the lock file, offline checks.

The cache is huggingface_hub's own layout (``models--org--name/{blobs,snapshots,refs}``), so
``huggingface_hub`` and ``transformers`` find the files with ``local_files_only``. Beside the
repos, ``airvoice-models.lock.json`` records, for every repo fetched, the commit it resolved to
and each file's size and sha256: ``verify`` checks the disk against it without the network.
Light: standard library only.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

LOCK_NAME = "airvoice-models.lock.json"
LOCK_VERSION = 1
_CHUNK = 8 * 1024 * 1024


def default_cache_dir() -> Path:
    """The hub cache huggingface_hub uses: ``HF_HUB_CACHE``, else ``$HF_HOME/hub``."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expandvars(explicit)).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.join("~", ".cache")), "huggingface"
    )
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def cache_path(cache_dir: str | os.PathLike[str] | None) -> Path:
    """``cache_dir`` as a path, or the default hub cache."""
    return Path(cache_dir).expanduser() if cache_dir else default_cache_dir()


def repo_folder(cache_dir: Path, repo_id: str) -> Path:
    """``models--org--name`` inside the cache."""
    return cache_dir / ("models--" + repo_id.replace("/", "--"))


def snapshot_dir(cache_dir: Path, repo_id: str, commit: str) -> Path:
    return repo_folder(cache_dir, repo_id) / "snapshots" / commit


def blob_path(cache_dir: Path, repo_id: str, blob: str) -> Path:
    return repo_folder(cache_dir, repo_id) / "blobs" / blob


def read_ref(cache_dir: Path, repo_id: str, revision: str = "main") -> str | None:
    """The commit a branch or tag points to in the cache, if recorded."""
    path = repo_folder(cache_dir, repo_id) / "refs" / revision
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def write_ref(cache_dir: Path, repo_id: str, revision: str, commit: str) -> None:
    if revision == commit:
        return
    path = repo_folder(cache_dir, repo_id) / "refs" / revision
    path.parent.mkdir(parents=True, exist_ok=True)
    if read_ref(cache_dir, repo_id, revision) != commit:
        path.write_text(commit)


def link_snapshot_file(
    cache_dir: Path, repo_id: str, commit: str, filename: str, blob: str
) -> Path:
    """Point ``snapshots/<commit>/<filename>`` at ``blobs/<blob>`` (a relative symlink, or a
    copy where symlinks are not supported), as huggingface_hub does."""
    pointer = snapshot_dir(cache_dir, repo_id, commit) / filename
    target = blob_path(cache_dir, repo_id, blob)
    pointer.parent.mkdir(parents=True, exist_ok=True)
    if pointer.is_symlink() or pointer.exists():
        if pointer.resolve() == target.resolve():
            return pointer
        pointer.unlink()
    try:
        pointer.symlink_to(os.path.relpath(target, pointer.parent))
    except OSError:
        import shutil

        shutil.copyfile(target, pointer)
    return pointer


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def git_blob_sha1(path: Path) -> str:
    """The git object id of a file (what the hub uses as the ETag of a non-LFS file)."""
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class LockedFile:
    size: int
    sha256: str
    blob: str
    """The blob's name in ``blobs/`` (the hub's ETag: sha256 for LFS files, git oid else)."""
    mtime_ns: int = 0
    """The blob's mtime when it was hashed: unchanged size and mtime skip re-hashing."""


@dataclass
class LockedRepo:
    repo_id: str
    role: str
    revision: str
    commit: str
    files: dict[str, LockedFile] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files.values())


@dataclass
class Lock:
    """What was fetched: each repo's commit, each file's size and hash."""

    repos: dict[str, LockedRepo] = field(default_factory=dict)
    endpoint: str | None = None
    updated: str | None = None

    def to_json(self) -> str:
        data = {
            "version": LOCK_VERSION,
            "generator": "airvoice models prefetch",
            "updated": self.updated,
            "endpoint": self.endpoint,
            "repos": {
                rid: {
                    "role": r.role,
                    "revision": r.revision,
                    "commit": r.commit,
                    "files": {name: asdict(f) for name, f in sorted(r.files.items())},
                }
                for rid, r in sorted(self.repos.items())
            },
        }
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Lock:
        data = json.loads(text)
        if data.get("version") != LOCK_VERSION:
            raise ValueError(f"unsupported lock file version {data.get('version')!r}")
        repos = {
            rid: LockedRepo(
                repo_id=rid,
                role=r["role"],
                revision=r["revision"],
                commit=r["commit"],
                files={name: LockedFile(**f) for name, f in r["files"].items()},
            )
            for rid, r in data["repos"].items()
        }
        return cls(repos=repos, endpoint=data.get("endpoint"), updated=data.get("updated"))


class LockFileError(ValueError):
    """The lock file exists but cannot be read."""


def lock_path(cache_dir: Path) -> Path:
    return cache_dir / LOCK_NAME


def read_lock(cache_dir: Path) -> Lock | None:
    """The lock file of the cache, or None when there is none."""
    path = lock_path(cache_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return Lock.from_json(text)
    except (ValueError, KeyError, TypeError) as exc:
        raise LockFileError(
            f"{path} is not a readable airvoice lock file ({exc}); "
            "run `airvoice models prefetch` again to rewrite it"
        ) from exc


def write_lock(cache_dir: Path, lock: Lock) -> Path:
    """Write the lock atomically (a temporary file renamed over the old one)."""
    path = lock_path(cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock.updated = datetime.now(UTC).isoformat(timespec="seconds")
    fd, tmp = tempfile.mkstemp(prefix=".airvoice-lock-", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(lock.to_json())
    os.replace(tmp, path)
    return path


ProblemKind = Literal["missing", "truncated", "changed", "revision"]


@dataclass(frozen=True)
class Problem:
    repo_id: str
    filename: str
    kind: ProblemKind
    detail: str

    def __str__(self) -> str:
        where = f"{self.repo_id}/{self.filename}" if self.filename else self.repo_id
        return f"{where}: {self.kind} ({self.detail})"


@dataclass
class Verification:
    """The result of checking the disk against the lock."""

    problems: list[Problem] = field(default_factory=list)
    files: int = 0
    bytes: int = 0
    hashed: int = 0
    repos: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_file(path: Path, locked: LockedFile, *, full: bool = False) -> tuple[str | None, bool]:
    """(what is wrong or None, whether the file was hashed). Size and mtime unchanged mean
    unchanged content unless ``full``; otherwise the file is hashed."""
    try:
        stat = path.stat()
    except OSError:
        return "missing", False
    if stat.st_size < locked.size:
        return f"truncated: {stat.st_size} of {locked.size} bytes", False
    if stat.st_size != locked.size:
        return f"changed: {stat.st_size} bytes, the lock says {locked.size}", False
    if not full and locked.mtime_ns and stat.st_mtime_ns == locked.mtime_ns:
        return None, False
    if sha256_file(path) != locked.sha256:
        return "changed: its sha256 differs from the lock", True
    return None, True


def verify(
    cache_dir: Path, lock: Lock, repos: Iterable[str] | None = None, *, full: bool = False
) -> Verification:
    """Check, offline, that every locked file of ``repos`` (all by default) is on disk intact,
    and that the cache's refs point at the locked commits (what the server will load)."""
    result = Verification()
    wanted = list(repos) if repos is not None else sorted(lock.repos)
    for repo_id in wanted:
        locked = lock.repos.get(repo_id)
        if locked is None:
            result.problems.append(
                Problem(repo_id, "", "missing", "not in the lock file: it was never prefetched")
            )
            continue
        result.repos.append(repo_id)
        ref = read_ref(cache_dir, repo_id, locked.revision)
        if locked.revision != locked.commit and ref != locked.commit:
            detail = (
                f"refs/{locked.revision} is {ref or 'absent'}, the lock says {locked.commit[:12]}"
            )
            result.problems.append(Problem(repo_id, "", "revision", detail))
        snapshot = snapshot_dir(cache_dir, repo_id, locked.commit)
        for name, entry in sorted(locked.files.items()):
            result.files += 1
            result.bytes += entry.size
            wrong, hashed = check_file(snapshot / name, entry, full=full)
            result.hashed += hashed
            if wrong is not None:
                kind: ProblemKind = wrong.split(":")[0]  # type: ignore[assignment]
                detail = wrong.partition(": ")[2] or f"no {snapshot / name}"
                result.problems.append(Problem(repo_id, name, kind, detail))
    return result


def disk_usage(cache_dir: Path, repo_id: str) -> int:
    """Bytes the repo's finished blobs take in the cache (0 when absent)."""
    blobs = repo_folder(cache_dir, repo_id) / "blobs"
    if not blobs.is_dir():
        return 0
    return sum(
        p.stat().st_size for p in blobs.iterdir() if p.is_file() and p.suffix != ".incomplete"
    )


def human_size(size: float) -> str:
    """``1.2 GB``-style sizes (powers of 1000, as the hub shows them)."""
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"
