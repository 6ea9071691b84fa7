"""A fake Hugging Face Hub on 127.0.0.1, for tests that download without the internet.

It speaks the part of the hub's HTTP API that ``huggingface_hub`` uses to download, as the real
hub answers it (read from huggingface_hub 2.4's ``file_download``, ``hf_api`` and
``utils/_http``):

- ``GET /api/models/{repo}[/revision/{rev}][?blobs=true]``: repo info with ``sha`` and
  ``siblings`` (size, ``blobId``, ``lfs.sha256`` with ``blobs=true``), ``gated``;
- ``HEAD``/``GET /{repo}/resolve/{rev}/{path}``: a regular file is served with its git object
  id as ``ETag`` and ``X-Repo-Commit``; an LFS file (``*.safetensors``, ``*.pth``, ``*.pt``...) is
  a ``302`` to a "CDN" on another origin (``localhost`` instead of ``127.0.0.1``, so clients drop
  the ``Authorization`` header as they do for the real CDN) with ``X-Linked-Etag`` (its sha256),
  ``X-Linked-Size`` and ``X-Repo-Commit``; ``Range`` requests answer ``206``;
- errors with the hub's ``X-Error-Code``/``X-Error-Message``: ``RepoNotFound`` (401 without a
  token, 404 with one), ``RevisionNotFound``, ``EntryNotFound``, ``GatedRepo`` (401 without a
  token, 403 for a token without access), and 401 "Invalid credentials in Authorization header"
  for an unknown token.

Faults for tests: cut the connection after N bytes of a file, then answer 503 for it.
Every request is recorded (method, path, range, whether a token was sent, bytes sent).
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import socket
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

#: Patterns the hub's default .gitattributes stores with Git LFS.
LFS_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".onnx", ".npz", ".h5", ".msgpack", ".gguf")
_CHUNK = 1 << 20
INVALID_TOKEN = "Invalid credentials in Authorization header"


@dataclass(frozen=True)
class HubFile:
    path: Path
    size: int
    git_oid: str
    sha256: str | None
    """Set for LFS files."""

    @property
    def etag(self) -> str:
        return self.sha256 or self.git_oid


@dataclass
class HubRepo:
    repo_id: str
    files: dict[str, HubFile]
    commit: str
    gated: bool = False


@dataclass
class Request:
    method: str
    path: str
    status: int
    range: str | None
    authorized: bool
    sent: int = 0


@dataclass
class Fault:
    cut_after: int | None = None
    """Bytes of the file's body sent before the connection is cut (once)."""
    then_unavailable: bool = False
    """After the cut, answer 503 for this file until the faults are cleared."""
    tripped: bool = False


@dataclass
class _State:
    repos: dict[str, HubRepo] = field(default_factory=dict)
    tokens: dict[str, set[str]] = field(default_factory=dict)
    faults: dict[tuple[str, str], Fault] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def git_blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _file_entry(path: Path, name: str) -> HubFile:
    size = path.stat().st_size
    if name.endswith(LFS_SUFFIXES):
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(8 * _CHUNK):
                digest.update(chunk)
        sha = digest.hexdigest()
        pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {size}\n"
        return HubFile(path, size, git_blob_oid(pointer.encode()), sha)
    return HubFile(path, size, git_blob_oid(path.read_bytes()), None)


class FakeHub:
    """A threaded HTTP server that behaves like huggingface.co for downloads."""

    def __init__(self) -> None:
        self.state = _State()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.state, self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.cdn_url = f"http://localhost:{self.port}"

    def start(self) -> FakeHub:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- content --------------------------------------------------------------------------

    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, Path | bytes] | Path,
        *,
        gated: bool = False,
        scratch: Path | None = None,
    ) -> HubRepo:
        """Publish a repo: a folder (every file under it) or {path in repo: file or bytes}.

        ``bytes`` contents are written under ``scratch``. The commit is derived from the content.
        """
        if isinstance(files, Path):
            files = {
                p.relative_to(files).as_posix(): p for p in sorted(files.rglob("*")) if p.is_file()
            }
        entries: dict[str, HubFile] = {}
        for name, content in files.items():
            if isinstance(content, bytes):
                if scratch is None:
                    raise ValueError("pass scratch= to publish bytes")
                target = scratch / repo_id.replace("/", "--") / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
                content = target
            entries[name] = _file_entry(content, name)
        listing = "".join(f"{n}:{e.etag}\n" for n, e in sorted(entries.items()))
        commit = hashlib.sha1(f"{repo_id}\n{listing}".encode()).hexdigest()
        repo = HubRepo(repo_id, entries, commit, gated)
        with self.state.lock:
            self.state.repos[repo_id] = repo
        return repo

    def add_token(self, token: str, gated_access: Iterable[str] = ()) -> None:
        """A valid token, granted access to the gated repos listed."""
        with self.state.lock:
            self.state.tokens[token] = set(gated_access)

    # -- faults and records ---------------------------------------------------------------

    def cut(
        self, repo_id: str, filename: str, after: int, *, then_unavailable: bool = True
    ) -> None:
        """Cut the connection after ``after`` bytes of the file's next download."""
        with self.state.lock:
            self.state.faults[(repo_id, filename)] = Fault(after, then_unavailable)

    def clear_faults(self) -> None:
        with self.state.lock:
            self.state.faults.clear()

    def fault(self, repo_id: str, filename: str) -> Fault | None:
        with self.state.lock:
            return self.state.faults.get((repo_id, filename))

    def requests(self) -> list[Request]:
        with self.state.lock:
            return list(self.state.requests)

    def reset_log(self) -> None:
        with self.state.lock:
            self.state.requests.clear()

    def downloads(self, filename: str | None = None) -> list[Request]:
        """GETs that sent file content (resolve or CDN)."""
        return [
            r
            for r in self.requests()
            if r.method == "GET"
            and r.status in (200, 206)
            and not r.path.startswith("/api/")
            and (filename is None or r.path.endswith("/" + filename))
        ]


# -- the handler --------------------------------------------------------------------------

_API = re.compile(r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?/?$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")
_CDN = re.compile(r"^/cdn/(?P<repo>[^/]+/[^/]+)/(?P<commit>[0-9a-f]{40})/(?P<path>.+)$")
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


class _HubError(Exception):
    def __init__(self, status: int, code: str | None, message: str, commit: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.commit = status, code, message, commit


def _handler(state: _State, hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:
            self._dispatch(head=True)

        def do_GET(self) -> None:
            self._dispatch(head=False)

        # -- routing ----------------------------------------------------------------------

        def _dispatch(self, head: bool) -> None:
            url = urlsplit(self.path)
            path = unquote(url.path)
            record = Request(
                self.command,
                path,
                0,
                self.headers.get("Range"),
                "authorization" in {k.lower() for k in self.headers},
            )
            with state.lock:
                state.requests.append(record)
            try:
                if m := _API.match(path):
                    self._api(m["repo"], m["rev"], parse_qs(url.query), record)
                elif m := _RESOLVE.match(path):
                    self._resolve(m["repo"], m["rev"], m["path"], head, record)
                elif m := _CDN.match(path):
                    self._cdn(m["repo"], m["commit"], m["path"], head, record)
                else:
                    self._json(404, {"error": "Not Found"}, record)
            except _HubError as err:
                self._error(err, head, record)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _auth(self) -> str | None:
            """The token sent, or None; an unknown token is refused as the hub does."""
            value = self.headers.get("Authorization")
            if not value:
                return None
            token = value.removeprefix("Bearer ").strip()
            with state.lock:
                known = token in state.tokens
            if not known:
                raise _HubError(401, None, INVALID_TOKEN)
            return token

        def _repo(self, repo_id: str, token: str | None) -> HubRepo:
            with state.lock:
                repo = state.repos.get(repo_id)
            if repo is None:
                # Unauthenticated callers cannot tell a missing repo from a private one.
                raise _HubError(
                    401 if token is None else 404, "RepoNotFound", "Repository not found"
                )
            return repo

        def _revision(self, repo: HubRepo, rev: str | None) -> None:
            if rev not in (None, "main", repo.commit):
                raise _HubError(404, "RevisionNotFound", f"Invalid rev id: {rev}")

        def _check_gate(self, repo: HubRepo, token: str | None) -> None:
            if not repo.gated:
                return
            with state.lock:
                allowed = token is not None and repo.repo_id in state.tokens.get(token, set())
            if token is None:
                raise _HubError(
                    401,
                    "GatedRepo",
                    f"Access to model {repo.repo_id} is restricted. You must have access to it "
                    "and be authenticated to access it. Please log in.",
                    repo.commit,
                )
            if not allowed:
                raise _HubError(
                    403,
                    "GatedRepo",
                    f"Access to model {repo.repo_id} is restricted and you are not in the "
                    f"authorized list. Visit {hub.url}/{repo.repo_id} to ask for access.",
                    repo.commit,
                )

        # -- endpoints --------------------------------------------------------------------

        def _api(
            self, repo_id: str, rev: str | None, query: dict[str, list[str]], record: Request
        ) -> None:
            token = self._auth()
            repo = self._repo(repo_id, token)
            self._revision(repo, rev)
            blobs = query.get("blobs", ["false"])[0].lower() == "true"
            siblings = []
            for name, entry in sorted(repo.files.items()):
                sibling: dict[str, object] = {"rfilename": name}
                if blobs:
                    sibling["blobId"] = entry.git_oid
                    sibling["size"] = entry.size
                    if entry.sha256:
                        sibling["lfs"] = {
                            "sha256": entry.sha256,
                            "size": entry.size,
                            "pointerSize": 134,
                        }
                siblings.append(sibling)
            # Gated repos' metadata is public, as on the hub; their files are not.
            body = {
                "_id": repo.commit[:24],
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "author": repo.repo_id.split("/")[0],
                "sha": repo.commit,
                "lastModified": "2025-01-01T00:00:00.000Z",
                "createdAt": "2024-01-01T00:00:00.000Z",
                "private": False,
                "gated": "manual" if repo.gated else False,
                "disabled": False,
                "downloads": 0,
                "likes": 0,
                "tags": [],
                "library_name": "transformers",
                "siblings": siblings,
                "usedStorage": sum(e.size for e in repo.files.values()),
            }
            self._json(200, body, record)

        def _resolve(self, repo_id: str, rev: str, path: str, head: bool, record: Request) -> None:
            token = self._auth()
            repo = self._repo(repo_id, token)
            self._revision(repo, rev)
            self._check_gate(repo, token)
            entry = repo.files.get(path)
            if entry is None:
                raise _HubError(404, "EntryNotFound", "Entry not found", repo.commit)
            common = {"X-Repo-Commit": repo.commit, "Accept-Ranges": "bytes"}
            if entry.sha256 is not None:
                # LFS: redirect to the CDN with a signed URL; the metadata is on this response.
                location = (
                    f"{hub.cdn_url}/cdn/{repo_id}/{repo.commit}/{path}"
                    f"?X-Amz-Signature={secrets.token_hex(8)}"
                )
                body = f"Found. Redirecting to {location}".encode()
                headers = {
                    **common,
                    "Location": location,
                    "ETag": f'"{entry.git_oid}"',
                    "X-Linked-Etag": f'"{entry.sha256}"',
                    "X-Linked-Size": str(entry.size),
                    "Content-Type": "text/plain; charset=utf-8",
                    "Content-Length": str(len(body)),
                }
                record.status = 302
                self._send(302, headers, None if head else body)
                return
            self._file(repo, path, entry, {**common, "ETag": f'"{entry.git_oid}"'}, head, record)

        def _cdn(self, repo_id: str, commit: str, path: str, head: bool, record: Request) -> None:
            with state.lock:
                repo = state.repos.get(repo_id)
            entry = repo.files.get(path) if repo is not None and repo.commit == commit else None
            if repo is None or entry is None:
                self._json(403, {"error": "AccessDenied"}, record)
                return
            self._file(repo, path, entry, {"ETag": f'"{entry.sha256}"'}, head, record)

        # -- responses --------------------------------------------------------------------

        def _file(
            self,
            repo: HubRepo,
            path: str,
            entry: HubFile,
            headers: dict[str, str],
            head: bool,
            record: Request,
        ) -> None:
            fault = hub.fault(repo.repo_id, path)
            if fault is not None and fault.tripped and fault.then_unavailable and not head:
                raise _HubError(503, None, "Service Unavailable")
            start, end, status = 0, entry.size - 1, 200
            requested = self.headers.get("Range")
            if requested and (m := _RANGE.match(requested.strip())):
                start = int(m[1])
                end = min(int(m[2]), entry.size - 1) if m[2] else entry.size - 1
                if start >= entry.size:
                    headers["Content-Range"] = f"bytes */{entry.size}"
                    self._send(416, {**headers, "Content-Length": "0"}, b"")
                    record.status = 416
                    return
                status = 206
                headers["Content-Range"] = f"bytes {start}-{end}/{entry.size}"
            length = end - start + 1
            headers.update(
                {
                    "Content-Length": str(length),
                    "Content-Type": "application/octet-stream",
                    "Accept-Ranges": "bytes",
                }
            )
            record.status = status
            if head:
                self._send(status, headers, None)
                return
            limit = length
            cut = fault is not None and not fault.tripped and fault.cut_after is not None
            if cut:
                assert fault is not None and fault.cut_after is not None
                limit = min(length, fault.cut_after)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            for chunk in _read(entry.path, start, limit):
                self.wfile.write(chunk)
                record.sent += len(chunk)
            if cut and limit < length:
                assert fault is not None
                fault.tripped = True
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)

        def _error(self, err: _HubError, head: bool, record: Request) -> None:
            headers = {"X-Error-Message": err.message, "Content-Type": "application/json"}
            if err.code:
                headers["X-Error-Code"] = err.code
            if err.commit:
                headers["X-Repo-Commit"] = err.commit
            body = json.dumps({"error": err.message}).encode()
            headers["Content-Length"] = str(len(body))
            record.status = err.status
            self._send(err.status, headers, None if head else body)

        def _json(self, status: int, body: object, record: Request) -> None:
            data = json.dumps(body).encode()
            record.status = status
            self._send(
                status,
                {"Content-Type": "application/json", "Content-Length": str(len(data))},
                data,
            )

        def _send(self, status: int, headers: dict[str, str], body: bytes | None) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            if body:
                self.wfile.write(body)

    return Handler


def _read(path: Path, start: int, length: int) -> Iterator[bytes]:
    with path.open("rb") as f:
        f.seek(start)
        remaining = length
        while remaining > 0 and (chunk := f.read(min(_CHUNK, remaining))):
            remaining -= len(chunk)
            yield chunk


@contextmanager
def running_hub() -> Iterator[FakeHub]:
    """A started ``FakeHub``, closed on exit."""
    hub = FakeHub().start()
    try:
        yield hub
    finally:
        hub.close()
