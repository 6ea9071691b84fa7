"""Load the shared engines for the server, offline, after checking every file is there."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from airvoice.config import ServerConfig, resolve_engine
from airvoice.errors import AirvoiceError


@dataclass(frozen=True)
class MissingModels:
    """What is missing, and the command that fetches it."""

    problems: list[str]

    def message(self) -> str:
        listing = "\n".join(f"* {p}" for p in self.problems)
        return f"the server cannot start, model files are missing:\n{listing}"


def check_models(config: ServerConfig) -> MissingModels | None:
    """Verify, offline, that every file the engines load is on disk."""
    from airvoice.engines.ultravox.loading import check_files, locate_files

    problems: list[str] = []
    try:
        check_files(
            locate_files(config.ultravox, config.text_model, config.audio_model, config.cache_dir)
        )
    except AirvoiceError as exc:
        problems.append(f"Ultravox: {exc}")
    try:
        kokoro_path(config)
    except AirvoiceError as exc:
        problems.append(f"Kokoro: {exc}")
    problems.extend(lock_problems(config))
    return MissingModels(problems) if problems else None


def lock_problems(config: ServerConfig) -> list[str]:
    """When the cache has a lock file (written by ``airvoice models prefetch``), check offline
    that the repos the server loads are exactly what was fetched: same commit, every file
    present with its size (and its sha256 when its size or mtime moved)."""
    from airvoice.models import registry, store

    cache = store.cache_path(config.cache_dir)
    try:
        lock = store.read_lock(cache)
    except store.LockFileError as exc:
        return [str(exc)]
    if lock is None:
        return []
    refs = [config.ultravox, config.text_model, config.audio_model, config.kokoro]
    wanted = [r for r in refs if r and r in lock.repos]
    ultravox = lock.repos.get(config.ultravox)
    if ultravox is not None and not (config.text_model and config.audio_model):
        snapshot = store.snapshot_dir(cache, ultravox.repo_id, ultravox.commit)
        try:
            named = registry.second_level_repos(
                json.loads((snapshot / "config.json").read_text(encoding="utf-8"))
            )
        except (OSError, ValueError):
            named = []
        wanted += [rid for rid, _ in named if rid in lock.repos and rid not in wanted]
    result = store.verify(cache, lock, wanted)
    return [
        f"{problem}: the cache does not match {store.lock_path(cache)}; repair it with "
        f"`airvoice models prefetch --repo {problem.repo_id}`"
        for problem in result.problems
    ]


def kokoro_path(config: ServerConfig) -> Path:
    """The Kokoro model path: a local path as given, or the repo's snapshot in the HF cache."""
    from airvoice.engines.ultravox.loading import resolve_repo

    path = Path(config.kokoro).expanduser()
    if path.exists():
        return path
    return resolve_repo(config.kokoro, config.cache_dir)


def load_engines(config: ServerConfig):  # noqa: ANN201 (Engines imports pipecat)
    """Load Ultravox and Kokoro once for the whole process."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from airvoice.engines.kokoro import KokoroEngine
    from airvoice.engines.ultravox import UltravoxEngine
    from airvoice.engines.ultravox.loading import check_files, locate_files
    from airvoice.pipeline import Engines

    generation = {
        "max_new_tokens": config.max_new_tokens,
        "temperature": config.temperature,
        "top_p": config.top_p,
        "repetition_penalty": config.repetition_penalty,
    }
    generation = {k: v for k, v in generation.items() if v is not None}
    if resolve_engine(config.engine, config.device) == "vllm":
        from airvoice.engines.ultravox.backends.vllm_engine import VllmSizing, VllmUltravoxEngine

        refs = (config.ultravox, config.text_model, config.audio_model)
        files = locate_files(*refs, config.cache_dir)
        ultravox = VllmUltravoxEngine.load(
            *refs,
            cache_dir=config.cache_dir,
            sizing=VllmSizing.for_device(config, files, check_files(files)),
            generation=generation,
        )
    else:
        ultravox = UltravoxEngine.load(
            config.ultravox,
            config.text_model,
            config.audio_model,
            cache_dir=config.cache_dir,
            device=config.device,
            dtype=config.dtype,
            generation=generation,
        )
    kokoro = KokoroEngine(
        kokoro_path(config),
        config.kokoro_voices,
        backend=config.tts_backend,
        device=config.device,
    )
    return Engines(ultravox, kokoro)
