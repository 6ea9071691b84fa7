"""``airvoice models``: list the presets, prefetch weights into the cache, verify them offline."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from airvoice.models import registry, store

models_app = typer.Typer(
    help="The model weights: which presets exist, fetch them once, check them offline.",
    no_args_is_help=True,
)

CacheDir = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        help="Hugging Face cache [default: $HF_HUB_CACHE or $HF_HOME/hub; /workspace/hf/hub "
        "in the pod].",
        show_default=False,
    ),
]


def _cache(cache_dir: Path | None) -> Path:
    return store.cache_path(cache_dir)


@models_app.command("list")
def list_models(
    cache_dir: CacheDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The presets: download size, VRAM in bf16, and whether they are in the cache."""
    cache = _cache(cache_dir)
    try:
        lock = store.read_lock(cache)
    except store.LockFileError as exc:
        Console(stderr=True).print(str(exc), style="red")
        raise typer.Exit(1) from exc
    rows = [_preset_state(p, cache, lock) for p in registry.PRESETS.values()]
    if as_json:
        typer.echo(json.dumps({"cache_dir": str(cache), "presets": rows}, indent=2))
        return
    table = Table(title=f"Model presets (cache: {cache})")
    for column in ("preset", "repos", "download", "VRAM bf16", "gated", "in cache", "on disk"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["name"] + ("  (default)" if row["default"] else ""),
            "\n".join(r["repo_id"] for r in row["repos"]),
            "≈ " + _size(row["approx_bytes"]),
            f"≈ {row['vram_gb']:g} GB",
            "yes" if row["gated"] else "no",
            row["state"],
            _size(row["bytes_on_disk"]),
        )
    console = Console()
    console.print(table)
    console.print(
        "Fetch with `airvoice models prefetch --preset NAME` (gated repos need HF_TOKEN).",
        highlight=False,
    )


def _preset_state(preset: registry.Preset, cache: Path, lock: store.Lock | None) -> dict[str, Any]:
    repos = []
    for spec in preset.repos:
        repo_id = spec.repo_id
        if spec.expected:
            repo_id = _named_text_model(preset, cache) or repo_id
        repos.append(_repo_state(repo_id, spec, cache, lock))
    states = {r["state"] for r in repos}
    state = (
        "complete" if states == {"complete"} else "absent" if states == {"absent"} else "incomplete"
    )
    return {
        "name": preset.name,
        "summary": preset.summary,
        "default": preset.name in registry.DEFAULT_PRESETS,
        "approx_bytes": preset.approx_bytes,
        "vram_gb": preset.vram_gb,
        "gated": preset.gated,
        "state": state,
        "bytes_on_disk": sum(r["bytes_on_disk"] for r in repos),
        "repos": repos,
    }


def _repo_state(
    repo_id: str, spec: registry.RepoSpec, cache: Path, lock: store.Lock | None
) -> dict[str, Any]:
    locked = lock.repos.get(repo_id) if lock else None
    if locked is not None:
        check = store.verify(cache, lock, [repo_id])  # type: ignore[arg-type]
        state = "complete" if check.ok else "damaged"
        commit: str | None = locked.commit
    else:
        commit = store.read_ref(cache, repo_id)
        state = "cached, not locked" if commit else "absent"
    return {
        "repo_id": repo_id,
        "role": spec.role,
        "gated": spec.gated,
        "approx_bytes": spec.approx_bytes,
        "state": state,
        "commit": commit,
        "bytes_on_disk": store.disk_usage(cache, repo_id),
    }


def _named_text_model(preset: registry.Preset, cache: Path) -> str | None:
    """The language model the cached Ultravox config names, if the config is cached."""
    for spec in preset.repos:
        if spec.role != "ultravox":
            continue
        commit = store.read_ref(cache, spec.repo_id)
        if commit is None:
            return None
        try:
            config = json.loads(
                (store.snapshot_dir(cache, spec.repo_id, commit) / "config.json").read_text()
            )
        except (OSError, ValueError):
            return None
        for repo_id, role in registry.second_level_repos(config):
            if role == "text":
                return repo_id
    return None


@models_app.command("prefetch")
def prefetch(
    preset: Annotated[
        list[str] | None,
        typer.Option(
            "--preset",
            "-p",
            help=f"A preset to fetch (repeatable): {', '.join(registry.PRESETS)} "
            f"[default: {' + '.join(registry.DEFAULT_PRESETS)}].",
            show_default=False,
        ),
    ] = None,
    repo: Annotated[
        list[str] | None,
        typer.Option(
            "--repo",
            help="A hub repo id to fetch instead of (or besides) presets (repeatable); an "
            "Ultravox repo brings the language model its config names.",
            show_default=False,
        ),
    ] = None,
    voices: Annotated[
        str | None,
        typer.Option(
            help="Kokoro voices to fetch, comma-separated (e.g. af_heart,am_adam) [default: all].",
            show_default=False,
        ),
    ] = None,
    cache_dir: CacheDir = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="Hugging Face token [default: $HF_TOKEN, else the saved login]. Prefer the "
            "environment variable: a command-line argument is visible to other processes.",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Files fetched at once.")] = 8,
    then_idle: Annotated[
        bool,
        typer.Option(
            "--then-idle",
            hidden=True,
            help="For the prefetch pod: print a marker line, then idle instead of exiting.",
        ),
    ] = False,
) -> None:
    """Download every file the server loads into the Hugging Face cache, and lock them.

    Resumes partial downloads, skips what is already there, records each repo's commit and
    each file's size and sha256 in the cache's lock file. Exits 1 if any repo failed (the
    others still complete).
    """
    if then_idle:
        _then_idle(lambda: prefetch(preset, repo, voices, cache_dir, token, workers))
        return
    from airvoice.models.prefetch import HubUnavailableError, Prefetcher, RepoRequest

    console = Console(highlight=False)
    try:
        presets = registry.resolve_presets(preset or ([] if repo else registry.DEFAULT_PRESETS))
    except KeyError as exc:
        console.print(str(exc.args[0]), style="red")
        raise typer.Exit(2) from exc
    voice_list = tuple(v.strip() for v in voices.split(",") if v.strip()) if voices else None
    requests: list[RepoRequest] = []
    for p in presets:
        for spec in p.repos:
            if not spec.expected:
                requests.append(RepoRequest(spec.repo_id, spec.role, voices=voice_list))
    for repo_id in repo or []:
        if repo_id.count("/") != 1:
            console.print(f"{repo_id!r} is not a repo id (expected owner/name)", style="red")
            raise typer.Exit(2)
        known = registry.KNOWN_REPOS.get(repo_id)
        role = known.role if known and not known.expected else "model"
        requests.append(RepoRequest(repo_id, role, voices=voice_list))
    requests = list({r.repo_id: r for r in requests}.values())
    cache = _cache(cache_dir)
    secret = token or os.environ.get("HF_TOKEN")
    try:
        prefetcher = Prefetcher(cache, token=secret, workers=workers, console=console)
        result = prefetcher.run(requests)
    except (HubUnavailableError, store.LockFileError) as exc:
        console.print(str(exc), style="red")
        raise typer.Exit(2) from exc
    if result.downloaded_files:
        rate = result.downloaded_bytes / max(result.seconds, 1e-6)
        resumed = (
            f", {store.human_size(result.resumed_bytes)} of it resumed from an earlier run"
            if result.resumed_bytes
            else ""
        )
        console.print(
            f"Downloaded {result.downloaded_files} files "
            f"({store.human_size(result.downloaded_bytes)}{resumed}) in {result.seconds:.1f} s "
            f"({store.human_size(rate)}/s)."
        )
    if result.lock_file is not None:
        console.print(f"Lock file: {result.lock_file}")
    if result.failures:
        console.print("Not fetched:", style="bold red")
        for message in dict.fromkeys(prefetcher.scrub(f.message) for f in result.failures):
            console.print(f"* {message}", style="red", soft_wrap=True)
        done = [r for r in result.repos if r not in {f.repo_id for f in result.failures}]
        if done:
            console.print(f"Complete: {', '.join(done)}.")
        raise typer.Exit(1)
    console.print(f"All set in {result.seconds:.1f} s: `airvoice serve` can start offline.")


def _then_idle(run: Callable[[], None]) -> None:
    """The prefetch pod's end: a marker line the deploy CLI watches for, then idle.

    A pod's container that exits is restarted (and would download again); the CLI removes the
    pod once it has seen the marker, else the pod terminates itself after a grace period.
    """
    from airvoice.cloud.specs import PREFETCH_FAILED, PREFETCH_OK

    try:
        run()
        ok = True
    except typer.Exit as exc:
        ok = exc.exit_code == 0
    except Exception:
        logging.getLogger(__name__).exception("prefetch failed")
        ok = False
    print(PREFETCH_OK if ok else PREFETCH_FAILED, flush=True)
    idle_forever()


def idle_forever() -> None:
    """Wait for the CLI to remove the pod; after a grace period the pod terminates itself."""
    from airvoice.cloud.selfstop import end_prefetch_pod

    end_prefetch_pod()


@models_app.command("verify")
def verify(
    cache_dir: CacheDir = None,
    full: Annotated[
        bool,
        typer.Option(
            "--full", help="Hash every file (default: hash only files whose size or mtime moved)."
        ),
    ] = False,
) -> None:
    """Check, offline, the cache against its lock file: exit 0 if intact, 1 if not."""
    cache = _cache(cache_dir)
    console = Console(highlight=False)
    try:
        lock = store.read_lock(cache)
    except store.LockFileError as exc:
        console.print(str(exc), style="red")
        raise typer.Exit(1) from exc
    if lock is None:
        console.print(
            f"No lock file in {cache} ({store.LOCK_NAME}): run `airvoice models prefetch` "
            "(with --cache-dir if the cache is elsewhere).",
            style="red",
        )
        raise typer.Exit(1)
    result = store.verify(cache, lock, full=full)
    if result.ok:
        console.print(
            f"OK: {result.files} files ({_size(result.bytes)}) of {len(result.repos)} repos "
            f"match {store.lock_path(cache)} ({result.hashed} hashed)."
        )
        return
    console.print(f"{len(result.problems)} problem(s) in {cache}:", style="bold red")
    for problem in result.problems:
        console.print(f"* {problem}", style="red", soft_wrap=True)
    console.print("Repair with `airvoice models prefetch` (it fetches only what is wrong).")
    raise typer.Exit(1)


def _size(n: int) -> str:
    return store.human_size(n)
