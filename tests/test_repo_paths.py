"""Nothing in the project refers to a path outside it: a fresh clone is all a user or a
contributor has (no steering repo beside it, no machine-specific directories)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from airvoice.testing.fakerunpod import SPEC_ENV, openapi_spec_path

ROOT = Path(__file__).resolve().parents[1]

RELATIVE = re.compile(r"(?:\.\./)+[\w.-]*")
"""A relative path that climbs up: checked by resolving it."""
ELSEWHERE = re.compile(r"(?<![\w.])/work/|[/\"']shared[/\"']|steering repo")
"""This workspace's directories, and the design repo beside it, by any spelling."""

ALLOWED = {"tests/conftest.py": ['"shared"']}
"""The one exception the project's rules make: its tests read RunPod's OpenAPI document (which
is RunPod's, not the project's) from the folder beside the checkout."""


def outside_references(path: Path, text: str) -> list[str]:
    """The references in ``text`` (of the file at ``path``) to places outside the repo."""
    found = [m.group(0) for m in ELSEWHERE.finditer(text)]
    for match in RELATIVE.finditer(text):
        targets = [(base / match.group(0)).resolve() for base in (path.parent, ROOT)]
        if not any(target.is_relative_to(ROOT) for target in targets):
            found.append(match.group(0))
    return found


def tracked_text_files() -> list[Path]:
    names = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    files = []
    for name in filter(None, names):
        path = ROOT / name.decode()
        if path.is_file() and b"\0" not in path.read_bytes()[:4096]:
            files.append(path)
    return files


def test_no_tracked_file_refers_to_a_path_outside_the_repo():
    files = tracked_text_files()
    assert len(files) > 100 and ROOT / "README.md" in files
    offenders = {}
    for path in files:
        if path == Path(__file__).resolve():
            continue  # its examples of what is refused
        found = outside_references(path, path.read_text(encoding="utf-8", errors="replace"))
        allowed = ALLOWED.get(str(path.relative_to(ROOT)), [])
        found = [ref for ref in found if ref not in allowed]
        if found:
            offenders[str(path.relative_to(ROOT))] = found
    assert offenders == {}


def test_the_scan_finds_what_it_looks_for():
    readme = ROOT / "README.md"
    for text in (
        "see ../shared/DESIGN.md",
        "the spec is in `../../elsewhere/spec.json`",
        'root.parent / "shared" / "runpod"',
        "python /work/main/bench.py",
        "the design is in the steering repo",
    ):
        assert outside_references(readme, text), text
    for text in ("docs/architecture.md", "/static/../web.py", "hex.match(/../g)", "shared("):
        assert not outside_references(ROOT / "tests" / "web" / "x.py", text), text


def test_the_fake_runpod_takes_runpods_document_from_the_environment(monkeypatch):
    assert openapi_spec_path().is_file()  # the tests' copy of RunPod's document
    monkeypatch.delenv(SPEC_ENV)
    with pytest.raises(FileNotFoundError, match=SPEC_ENV):
        openapi_spec_path()
