"""Download the weights the server needs into the Hugging Face cache, and lock them.

Built on huggingface_hub's HTTP API (repo info, ``HEAD`` on ``resolve`` for the ETag, commit and
CDN location, ``http_get`` for ranged downloads), but keeping partial downloads across runs:
a file is written to ``blobs/<etag>.incomplete`` and a rerun continues it with a ``Range``
request (huggingface_hub itself discards partial files of a failed run). Every file is hashed
while it arrives and checked against the hub's sha256 (LFS) or git object id before it enters
the cache. One rich progress display covers the whole set; files download in parallel.

The token (``HF_TOKEN`` or ``--token``) only ever goes into request headers, and never to a
CDN host: messages are scrubbed of it before they are shown.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from airvoice.models import store
from airvoice.models.registry import (
    KNOWN_REPOS,
    Role,
    missing_voices,
    repo_url,
    second_level_repos,
    select_files,
)

_HASH_CHUNK = 8 * 1024 * 1024


class HubUnavailableError(RuntimeError):
    """huggingface_hub is not installed, or offline mode forbids downloads."""


@dataclass(frozen=True)
class RepoRequest:
    """A repo to fetch: its role decides which files are selected."""

    repo_id: str
    role: Role = "model"
    revision: str = "main"
    voices: tuple[str, ...] | None = None
    named_by: str | None = None


@dataclass
class PlannedFile:
    repo_id: str
    filename: str
    size: int
    commit: str
    lfs_sha256: str | None
    blob_id: str | None


@dataclass
class RepoPlan:
    request: RepoRequest
    commit: str
    files: list[PlannedFile]


@dataclass(frozen=True)
class Failure:
    """A repo (or one of its files) that could not be fetched, and what to do about it."""

    repo_id: str
    message: str
    filename: str | None = None


@dataclass
class PrefetchResult:
    cache_dir: Path
    lock_file: Path | None = None
    repos: list[str] = field(default_factory=list)
    downloaded_files: int = 0
    downloaded_bytes: int = 0
    resumed_bytes: int = 0
    present_files: int = 0
    present_bytes: int = 0
    failures: list[Failure] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


def _hub() -> Any:
    try:
        import huggingface_hub
        from huggingface_hub import constants
    except ImportError as exc:
        raise HubUnavailableError(
            "prefetching needs huggingface_hub: pip install 'huggingface-hub>=2.4'"
        ) from exc
    if constants.is_offline_mode():
        raise HubUnavailableError(
            "HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set: prefetch needs the network. "
            "Unset it for this command (the server sets it itself)."
        )
    return huggingface_hub


class Prefetcher:
    """Fetch repos into ``cache_dir`` and record them in its lock file."""

    def __init__(
        self,
        cache_dir: Path,
        *,
        token: str | None = None,
        endpoint: str | None = None,
        workers: int = 8,
        console: Console | None = None,
    ) -> None:
        hub = _hub()
        from huggingface_hub import constants

        self.cache_dir = cache_dir
        self.endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
        self._token = token or None  # None: huggingface_hub reads HF_TOKEN or the saved login
        self.workers = max(1, workers)
        self.console = console or Console()
        self.api = hub.HfApi(endpoint=self.endpoint, token=self._token)
        self._secret = self._token or _saved_token()

    # -- messages -------------------------------------------------------------------------

    def scrub(self, text: str) -> str:
        """``text`` with the token removed (it must never be shown or logged)."""
        return text.replace(self._secret, "***") if self._secret else text

    def _say(self, text: str, style: str | None = None) -> None:
        self.console.print(self.scrub(text), style=style, highlight=False, soft_wrap=True)

    # -- the whole run --------------------------------------------------------------------

    def run(self, requests: Sequence[RepoRequest]) -> PrefetchResult:
        started = time.perf_counter()
        result = PrefetchResult(cache_dir=self.cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        lock = store.read_lock(self.cache_dir) or store.Lock()
        plans = self._plan(list(requests), result)
        locked = self._fetch(plans, lock, result)
        if locked:
            lock.endpoint = self.endpoint
            lock.repos.update(locked)
            result.lock_file = store.write_lock(self.cache_dir, lock)
        result.repos = [p.request.repo_id for p in plans]
        result.seconds = time.perf_counter() - started
        return result

    # -- planning: repo info, config.json, second-level repos -----------------------------

    def _plan(self, queue: list[RepoRequest], result: PrefetchResult) -> list[RepoPlan]:
        plans: list[RepoPlan] = []
        seen = {r.repo_id for r in queue}
        index = 0
        while index < len(queue):  # bounded: each repo id enters the queue once
            request = queue[index]
            index += 1
            try:
                plan = self._plan_repo(request)
            except Exception as exc:
                result.failures.append(Failure(request.repo_id, self.explain(exc, request)))
                continue
            if plan is None:
                continue
            if isinstance(plan, Failure):
                result.failures.append(plan)
                continue
            plans.append(plan)
            if plan.request.role == "ultravox":
                config = self._read_config(plan)
                for repo_id, role in second_level_repos(config):
                    if repo_id not in seen:
                        seen.add(repo_id)
                        queue.append(RepoRequest(repo_id, role, named_by=request.repo_id))
        return plans

    def _plan_repo(self, request: RepoRequest) -> RepoPlan | Failure | None:
        info = self.api.model_info(
            request.repo_id, revision=request.revision, files_metadata=True, token=self._token
        )
        commit = str(info.sha)
        siblings = {s.rfilename: s for s in info.siblings or []}
        role = request.role
        if role == "model" and "kokoro-v1_0.pth" in siblings:
            role = "kokoro"
        if "config.json" in siblings:
            # The config first: it says whether this is an Ultravox (and names its other repos),
            # and fetching it checks access (gated repos) before anything large is planned.
            config_file = _planned(request.repo_id, commit, siblings["config.json"])
            if self._present(config_file, None) is None:
                self._ensure_file(config_file, None)
            path = store.snapshot_dir(self.cache_dir, request.repo_id, commit) / "config.json"
            config = json.loads(path.read_text(encoding="utf-8"))
            if role == "model" and config.get("model_type") == "ultravox":
                role = "ultravox"
        request = RepoRequest(
            request.repo_id, role, request.revision, request.voices, request.named_by
        )
        names = select_files(role, siblings, request.voices)
        if role == "kokoro" and request.voices:
            absent = missing_voices(siblings, request.voices)
            if absent:
                return Failure(
                    request.repo_id,
                    f"{request.repo_id} has no voice {', '.join(absent)}; "
                    f"see the voices/ folder at {repo_url(self.endpoint, request.repo_id)}",
                )
        if not names:
            return Failure(
                request.repo_id,
                f"{request.repo_id} holds none of the files the server loads "
                "(safetensors weights, config.json, tokenizer): is it the right repo?",
            )
        files = [_planned(request.repo_id, commit, siblings[n]) for n in names]
        return RepoPlan(request, commit, files)

    def _read_config(self, plan: RepoPlan) -> dict[str, Any]:
        path = store.snapshot_dir(self.cache_dir, plan.request.repo_id, plan.commit) / "config.json"
        return json.loads(path.read_text(encoding="utf-8"))

    # -- fetching -------------------------------------------------------------------------

    def _fetch(
        self, plans: list[RepoPlan], lock: store.Lock, result: PrefetchResult
    ) -> dict[str, store.LockedRepo]:
        todo: list[PlannedFile] = []
        done: dict[tuple[str, str], store.LockedFile] = {}
        for plan in plans:
            previous = lock.repos.get(plan.request.repo_id)
            for f in plan.files:
                entry = self._present(f, previous)
                if entry is None:
                    todo.append(f)
                else:
                    done[(f.repo_id, f.filename)] = entry
                    result.present_files += 1
                    result.present_bytes += f.size
        failed_repos: set[str] = set()
        if not plans:
            pass
        elif not todo:
            self._say(
                f"Everything is already in {self.cache_dir}: {result.present_files} files, "
                f"{store.human_size(result.present_bytes)}. Nothing to download."
            )
        else:
            total = sum(f.size for f in todo)
            self._say(
                f"Downloading {len(todo)} files ({store.human_size(total)}) into {self.cache_dir}"
                + (f"; {result.present_files} already there." if result.present_files else ".")
            )
            self._download_all(todo, done, result, failed_repos)
        locked: dict[str, store.LockedRepo] = {}
        for plan in plans:
            rid = plan.request.repo_id
            if rid in failed_repos:
                continue
            files = {f.filename: done[(rid, f.filename)] for f in plan.files}
            store.write_ref(self.cache_dir, rid, plan.request.revision, plan.commit)
            locked[rid] = store.LockedRepo(
                rid, plan.request.role, plan.request.revision, plan.commit, files
            )
        return locked

    def _present(
        self, f: PlannedFile, previous: store.LockedRepo | None
    ) -> store.LockedFile | None:
        """The lock entry of a file already in the snapshot, or None if it must be fetched."""
        pointer = store.snapshot_dir(self.cache_dir, f.repo_id, f.commit) / f.filename
        try:
            stat = pointer.stat()
        except OSError:
            return None
        if stat.st_size != f.size:
            return None
        blob = pointer.resolve().name if pointer.is_symlink() else (f.lfs_sha256 or f.blob_id)
        old = previous.files.get(f.filename) if previous and previous.commit == f.commit else None
        if old and old.size == f.size and old.mtime_ns == stat.st_mtime_ns and old.blob == blob:
            return old
        if not _intact(pointer, f.lfs_sha256, f.blob_id):
            return None  # a damaged file: fetch it again
        sha = f.lfs_sha256 or store.sha256_file(pointer)
        return store.LockedFile(f.size, sha, str(blob), stat.st_mtime_ns)

    def _download_all(
        self,
        todo: list[PlannedFile],
        done: dict[tuple[str, str], store.LockedFile],
        result: PrefetchResult,
        failed_repos: set[str],
    ) -> None:
        todo = sorted(todo, key=lambda f: -f.size)  # the largest first: better parallel packing
        progress = Progress(
            TextColumn("[bold]{task.description}", justify="left"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        overall = progress.add_task("all files", total=sum(f.size for f in todo))
        with progress, ThreadPoolExecutor(max_workers=self.workers) as pool:
            futures = {pool.submit(self._ensure_file, f, (progress, overall)): f for f in todo}
            for future in as_completed(futures):
                f = futures[future]
                try:
                    entry, resumed = future.result()
                except Exception as exc:
                    request = RepoRequest(f.repo_id)
                    message = self.explain(exc, request, f.filename)
                    result.failures.append(Failure(f.repo_id, message, f.filename))
                    failed_repos.add(f.repo_id)
                    continue
                done[(f.repo_id, f.filename)] = entry
                result.downloaded_files += 1
                result.downloaded_bytes += f.size - resumed
                result.resumed_bytes += resumed

    def _ensure_file(
        self, f: PlannedFile, bars: tuple[Progress, TaskID] | None
    ) -> tuple[store.LockedFile, int]:
        """Bring one file into the cache; returns its lock entry and the bytes resumed."""
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
        from huggingface_hub.utils import WeakFileLock, build_hf_headers

        url = hf_hub_url(f.repo_id, f.filename, revision=f.commit, endpoint=self.endpoint)
        meta = get_hf_file_metadata(
            url, token=self._token, endpoint=self.endpoint, retry_on_errors=True
        )
        etag = meta.etag or f.lfs_sha256 or f.blob_id
        size = meta.size if meta.size is not None else f.size
        if not etag:
            raise RuntimeError(
                f"{url} answered without an ETag: is HF_ENDPOINT a Hugging Face hub?"
            )
        blob = store.blob_path(self.cache_dir, f.repo_id, etag)
        blob.parent.mkdir(parents=True, exist_ok=True)
        locks = self.cache_dir / ".locks" / store.repo_folder(self.cache_dir, f.repo_id).name
        locks.mkdir(parents=True, exist_ok=True)
        resumed = 0
        with WeakFileLock(locks / f"{etag}.lock"):
            if blob.is_file() and not (
                blob.stat().st_size == size and _intact(blob, f.lfs_sha256, etag)
            ):
                blob.unlink()  # damaged: fetch it again
            if not blob.is_file():
                headers = build_hf_headers(token=self._token)
                location = meta.location or url
                if _origin(location) != _origin(url):
                    headers.pop("authorization", None)  # a CDN never sees the token
                resumed = self._download_blob(f, location, headers, blob, size, etag, bars)
            sha = store.sha256_file(blob) if f.lfs_sha256 is None else f.lfs_sha256
            store.link_snapshot_file(self.cache_dir, f.repo_id, f.commit, f.filename, etag)
        return store.LockedFile(size, sha, etag, blob.stat().st_mtime_ns), resumed

    def _download_blob(
        self,
        f: PlannedFile,
        location: str,
        headers: dict[str, str],
        blob: Path,
        size: int,
        etag: str,
        bars: tuple[Progress, TaskID] | None,
    ) -> int:
        """Download (or continue) ``blobs/<etag>.incomplete``, check it, move it in place."""
        from huggingface_hub.file_download import http_get

        partial = blob.with_name(blob.name + ".incomplete")
        resume = partial.stat().st_size if partial.exists() else 0
        if resume > size:
            partial.unlink()
            resume = 0
        task: TaskID | None = None
        make_bar: Callable[..., Any] | None = None
        if bars is not None:
            progress, overall = bars
            task = progress.add_task(_short(f.filename), total=size, completed=0)
            make_bar = functools.partial(_ProgressBridge, progress, overall, task)
        try:
            with partial.open("ab") as raw:
                writer = _HashingWriter(raw, partial, resume)
                http_get(
                    location,
                    writer,  # type: ignore[arg-type]
                    resume_size=resume,
                    headers=headers,
                    expected_size=size,
                    displayed_filename=f.filename,
                    tqdm_class=make_bar,  # type: ignore[arg-type]
                )
                raw.flush()
            digest = writer.hexdigest()
        finally:
            if bars is not None and task is not None:
                bars[0].remove_task(task)
        if f.lfs_sha256 is not None and digest != f.lfs_sha256:
            partial.unlink(missing_ok=True)
            raise CorruptDownloadError(f.repo_id, f.filename, "sha256")
        if f.lfs_sha256 is None and store.git_blob_sha1(partial) != etag:
            partial.unlink(missing_ok=True)
            raise CorruptDownloadError(f.repo_id, f.filename, "git object id")
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(partial, 0o666 & ~mask)
        os.replace(partial, blob)
        return resume

    # -- errors ---------------------------------------------------------------------------

    def explain(self, exc: BaseException, request: RepoRequest, filename: str | None = None) -> str:
        """A message for ``exc`` that says what to do next (never containing the token)."""
        from huggingface_hub import errors

        rid = request.repo_id
        url = repo_url(self.endpoint, rid)
        what = f"{rid}/{filename}" if filename else rid
        named = f" (named by {request.named_by})" if request.named_by else ""
        status = getattr(getattr(exc, "response", None), "status_code", None)
        spec = KNOWN_REPOS.get(rid)
        licence = spec.licence if spec and spec.licence else "its licence"
        if isinstance(exc, errors.GatedRepoError):
            if status == 401:
                text = (
                    f"{rid}{named} is gated and no Hugging Face token was given. Log in at {url}, "
                    f"accept {licence}, create a read token at "
                    f"{self.endpoint}/settings/tokens, then rerun with HF_TOKEN set."
                )
            else:
                text = (
                    f"{rid}{named} is gated and this token's account has not been granted "
                    f"access. Open {url}, accept {licence} (requests are reviewed, usually "
                    "within hours), then rerun this command with the same token."
                )
        elif _invalid_token(exc):
            text = (
                f"the hub rejected the Hugging Face token while fetching {what} (invalid or "
                f"expired). Create a read token at {self.endpoint}/settings/tokens and set "
                "HF_TOKEN (or pass --token)."
            )
        elif isinstance(exc, errors.RevisionNotFoundError):
            text = f"{rid} has no revision {request.revision!r}: check --revision."
        elif isinstance(exc, errors.RepositoryNotFoundError):
            text = (
                f"{rid}{named} was not found at {self.endpoint}: check the name; a private repo "
                "needs HF_TOKEN of an account that can read it."
            )
        elif isinstance(exc, errors.RemoteEntryNotFoundError):
            text = f"{what} is not in the repo any more: rerun to plan again from its files."
        elif isinstance(exc, CorruptDownloadError):
            text = f"{exc} The partial file was deleted: rerun this command to fetch it again."
        elif isinstance(exc, errors.HfHubHTTPError) and status is not None and status >= 500:
            text = (
                f"the hub answered {status} for {what}: rerun this command later; finished files "
                "are kept and partial ones resume where they stopped."
            )
        elif _is_network_error(exc):
            text = (
                f"the download of {what} was interrupted ({type(exc).__name__}: {exc}). "
                "Rerun the same command: it resumes where it stopped."
            )
        elif isinstance(exc, errors.HfHubHTTPError):
            text = f"the hub refused {what} ({status}): {exc}"
        else:
            text = f"could not fetch {what}: {type(exc).__name__}: {exc}"
        return self.scrub(text)


class CorruptDownloadError(OSError):
    """A downloaded file's hash is not the one the hub announced."""

    def __init__(self, repo_id: str, filename: str, check: str) -> None:
        super().__init__(f"{repo_id}/{filename} arrived with the wrong {check}.")


class _ProgressBridge:
    """The tqdm-like object ``http_get`` drives, advancing the shared rich display."""

    def __init__(self, progress: Progress, overall: TaskID, task: TaskID, **kwargs: Any) -> None:
        self.progress, self.overall, self.task = progress, overall, task
        initial = int(kwargs.get("initial") or 0)
        if initial:
            self.update(initial)

    def update(self, n: float | None = 1) -> None:
        step = float(n or 0)
        self.progress.advance(self.task, step)
        self.progress.advance(self.overall, step)

    def close(self) -> None:
        pass

    def __enter__(self) -> _ProgressBridge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _HashingWriter:
    """A file wrapper that hashes what is written; ``http_get`` may rewind it (a server that
    ignores ``Range``), then the hash is recomputed from disk."""

    def __init__(self, raw: BinaryIO, path: Path, prefix: int) -> None:
        self.raw, self.path = raw, path
        self.digest = hashlib.sha256()
        self.dirty = False
        if prefix:
            with path.open("rb") as f:
                remaining = prefix
                while remaining > 0 and (chunk := f.read(min(_HASH_CHUNK, remaining))):
                    self.digest.update(chunk)
                    remaining -= len(chunk)

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.raw.write(data)

    def tell(self) -> int:
        return self.raw.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        self.dirty = True
        return self.raw.seek(offset, whence)

    def truncate(self, size: int | None = None) -> int:
        self.dirty = True
        result = self.raw.truncate(size)
        if self.raw.tell() == 0:
            self.digest, self.dirty = hashlib.sha256(), False
        return result

    def flush(self) -> None:
        self.raw.flush()

    def hexdigest(self) -> str:
        if self.dirty:
            self.raw.flush()
            return store.sha256_file(self.path)
        return self.digest.hexdigest()


def _planned(repo_id: str, commit: str, sibling: Any) -> PlannedFile:
    lfs = getattr(sibling, "lfs", None)
    size = sibling.size if sibling.size is not None else (lfs.size if lfs else 0)
    return PlannedFile(
        repo_id, sibling.rfilename, int(size), commit, lfs.sha256 if lfs else None, sibling.blob_id
    )


def _intact(path: Path, lfs_sha256: str | None, git_oid: str | None) -> bool:
    """Whether a file's content is the one the hub announced (sha256 for LFS, else git oid)."""
    if lfs_sha256 is not None:
        return store.sha256_file(path) == lfs_sha256
    return git_oid is None or store.git_blob_sha1(path) == git_oid


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def _invalid_token(exc: BaseException) -> bool:
    response = getattr(exc, "response", None)
    if response is None or getattr(response, "status_code", None) != 401:
        return False
    message = response.headers.get("X-Error-Message", "")
    return "Invalid credentials" in message


def _is_network_error(exc: BaseException) -> bool:
    transport = type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore")
    return (
        transport
        or isinstance(exc, (ConnectionError, TimeoutError))
        or (isinstance(exc, OSError) and "Consistency check failed" in str(exc))
    )


def _saved_token() -> str | None:
    try:
        from huggingface_hub import get_token

        return get_token()
    except Exception:
        return os.environ.get("HF_TOKEN") or None


def _short(name: str, width: int = 36) -> str:
    return name if len(name) <= width else "…" + name[-(width - 1) :]
