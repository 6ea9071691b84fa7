"""Which weights the server needs: named presets, and the files of a repo it actually loads.

A preset names the top-level repos; the second-level repos of an Ultravox model (its language
model, and its Whisper model when the audio tower is not embedded) are read from the Ultravox
``config.json`` at prefetch time, so the registry only records what we expect them to be (for
sizes and the gated flag shown by ``airvoice models list``). Light: no third-party imports.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Role = Literal["ultravox", "text", "audio", "kokoro", "model"]

GB = 1000**3
MB = 1000**2


@dataclass(frozen=True)
class RepoSpec:
    """One hub repo of a preset, with what we know of it before asking the hub."""

    repo_id: str
    role: Role
    approx_bytes: int
    gated: bool = False
    licence: str | None = None
    """What to accept on the repo's page when it is gated."""
    expected: bool = False
    """Named by another repo's config (read at prefetch time), not by the preset itself."""


@dataclass(frozen=True)
class Preset:
    """A named set of repos with its approximate download size and VRAM in bf16."""

    name: str
    summary: str
    repos: tuple[RepoSpec, ...]
    vram_gb: float

    @property
    def approx_bytes(self) -> int:
        return sum(r.approx_bytes for r in self.repos)

    @property
    def gated(self) -> bool:
        return any(r.gated for r in self.repos)


LLAMA_31_LICENCE = "the Llama 3.1 Community License"
LLAMA_32_LICENCE = "the Llama 3.2 Community License"

PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "ultravox-8b",
            "Ultravox v0.5 on Llama 3.1 8B Instruct (default on an L4, 24 GB)",
            (
                RepoSpec("fixie-ai/ultravox-v0_5-llama-3_1-8b", "ultravox", int(1.4 * GB)),
                RepoSpec(
                    "meta-llama/Llama-3.1-8B-Instruct",
                    "text",
                    int(16.1 * GB),
                    gated=True,
                    licence=LLAMA_31_LICENCE,
                    expected=True,
                ),
            ),
            vram_gb=18.5,
        ),
        Preset(
            "ultravox-1b",
            "Ultravox v0.5 on Llama 3.2 1B Instruct (the fast one)",
            (
                RepoSpec("fixie-ai/ultravox-v0_5-llama-3_2-1b", "ultravox", int(1.3 * GB)),
                RepoSpec(
                    "meta-llama/Llama-3.2-1B-Instruct",
                    "text",
                    int(2.5 * GB),
                    gated=True,
                    licence=LLAMA_32_LICENCE,
                    expected=True,
                ),
            ),
            vram_gb=4.5,
        ),
        Preset(
            "kokoro-82m",
            "Kokoro-82M text-to-speech (config, weights, voices)",
            (RepoSpec("hexgrad/Kokoro-82M", "kokoro", int(355 * MB)),),
            vram_gb=0.5,
        ),
    )
}

#: What ``airvoice models prefetch`` fetches when no preset or repo is named: what ``serve``
#: loads by default.
DEFAULT_PRESETS = ("ultravox-8b", "kokoro-82m")

KNOWN_REPOS: dict[str, RepoSpec] = {r.repo_id: r for p in PRESETS.values() for r in p.repos}

# Files a transformers-style repo needs besides its weights (the tokenizer and settings).
_SETTINGS = (
    "config.json",
    "generation_config.json",
    "preprocessor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.json",
    "chat_template.jinja",
)
_SAFETENSORS = ("model.safetensors", "model.safetensors.index.json", "model-*-of-*.safetensors")
KOKORO_FILES = ("config.json", "kokoro-v1_0.pth")


def select_files(
    role: Role, filenames: Iterable[str], voices: Sequence[str] | None = None
) -> list[str]:
    """The files of a repo the server loads, out of everything the repo holds.

    Weights are the safetensors only (never ``.bin``/``.pth`` duplicates or ``original/``);
    remote code (``*.py``) is never fetched. For Kokoro: the config, the v1.0 checkpoint and
    the voices asked for (all of them when ``voices`` is None).
    """
    names = sorted(set(filenames))
    if role == "kokoro":
        wanted = set(KOKORO_FILES)
        voice_files = [n for n in names if n.startswith("voices/") and n.endswith(".pt")]
        if voices is None:
            wanted.update(voice_files)
        else:
            wanted.update(f"voices/{v}.pt" for v in voices)
        return [n for n in names if n in wanted]
    selected = [n for n in names if n in _SETTINGS]
    weights = [n for n in names if "/" not in n and _matches(n, _SAFETENSORS)]
    sharded = "model.safetensors.index.json" in weights
    for name in weights:
        # An index means shards; a lone model.safetensors beside it would be a duplicate.
        if sharded and name == "model.safetensors":
            continue
        if not sharded and name != "model.safetensors":
            continue
        selected.append(name)
    return sorted(selected)


def missing_voices(filenames: Iterable[str], voices: Sequence[str]) -> list[str]:
    """The voices asked for that the Kokoro repo does not have."""
    present = set(filenames)
    return [v for v in voices if f"voices/{v}.pt" not in present]


def second_level_repos(ultravox_config: dict[str, object]) -> list[tuple[str, Role]]:
    """The repos an Ultravox ``config.json`` names that the server loads too.

    Mirrors ``airvoice.engines.ultravox.loading.locate_files``: the language model named by
    ``text_model_id``, and the Whisper model of ``audio_model_id`` unless the config embeds an
    ``audio_config`` (then the audio tower is in the Ultravox checkpoint).
    """
    repos: list[tuple[str, Role]] = []
    text = ultravox_config.get("text_model_id")
    if isinstance(text, str) and text:
        repos.append((text, "text"))
    audio = ultravox_config.get("audio_model_id")
    if isinstance(audio, str) and audio and "audio_config" not in ultravox_config:
        repos.append((audio, "audio"))
    return repos


def resolve_presets(names: Iterable[str]) -> list[Preset]:
    """The presets named, in order; an unknown name is a ``KeyError`` that lists the known ones."""
    presets = []
    for name in names:
        key = name.lower()
        if key not in PRESETS:
            raise KeyError(f"unknown preset {name!r}; choose from: {', '.join(PRESETS)}")
        presets.append(PRESETS[key])
    return presets


def repo_url(endpoint: str, repo_id: str) -> str:
    """The repo's web page (where a gated licence is accepted)."""
    return f"{endpoint.rstrip('/')}/{repo_id}"


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)
