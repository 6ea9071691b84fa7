"""What both Ultravox backends share about generating a reply: its settings and its stats."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch

END_OF_TURN_TOKENS = ("<|eot_id|>", "<|end_of_text|>", "<|eom_id|>")


@dataclass(frozen=True)
class GenerationSettings:
    """How replies are sampled. ``temperature=0`` decodes greedily.

    ``repetition_penalty`` divides the positive logits (multiplies the negative ones) of every
    token already in the prompt or the reply, as transformers' ``RepetitionPenaltyLogitsProcessor``
    does; the reference pipeline (fixie-ai/ultravox ``ultravox_pipeline.py``) uses 1.1.
    """

    max_new_tokens: int = 256
    min_new_tokens: int = 0
    temperature: float = 0.6
    top_p: float = 0.9
    top_k: int = 0
    repetition_penalty: float = 1.1
    seed: int | None = None
    reuse_kv_cache: bool = True
    max_audio_seconds: float = 120.0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise ValueError("min_new_tokens must be between 0 and max_new_tokens")
        if self.temperature < 0:
            raise ValueError("temperature must be 0 (greedy) or more")
        if not 0 < self.top_p <= 1:
            raise ValueError("top_p must be in (0, 1]")
        if self.top_k < 0:
            raise ValueError("top_k must be 0 (off) or more")
        if self.repetition_penalty <= 0:
            raise ValueError("repetition_penalty must be more than 0 (1 is off)")

    @classmethod
    def from_generation_config(cls, config: dict[str, Any], **overrides: Any) -> GenerationSettings:
        """Defaults from a checkpoint's ``generation_config.json``, then ``overrides``.

        Keys the file does not set keep our defaults (the reference pipeline's
        ``repetition_penalty`` of 1.1 included); ``do_sample: false`` means greedy.
        """
        values: dict[str, Any] = {}
        if config.get("do_sample") is False:
            values["temperature"] = 0.0
        elif config.get("temperature") is not None:
            values["temperature"] = float(config["temperature"])
        for key, kind in (
            ("top_p", float),
            ("top_k", int),
            ("repetition_penalty", float),
            ("max_new_tokens", int),
        ):
            if config.get(key) is not None:
                values[key] = kind(config[key])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass
class ReplyStats:
    """What one reply cost: timings (``time.perf_counter`` seconds) and token counts."""

    submitted_at: float = 0.0
    first_token_at: float | None = None
    finished_at: float | None = None
    prompt_tokens: int = 0
    audio_tokens: int = 0
    reused_tokens: int = 0
    generated_tokens: int = 0
    finish_reason: str | None = None
    submitted_step: int = 0
    first_token_step: int | None = None
    first_logits: torch.Tensor | None = field(default=None, repr=False)
    token_ids: list[int] = field(default_factory=list, repr=False)
    """The reply's tokens (the end-of-turn token excluded)."""
    logprobs: list[dict[int, float]] = field(default_factory=list, repr=False)
    """Per step, the top log-probabilities of the model's raw output, when asked for."""

    @property
    def time_to_first_token(self) -> float | None:
        """Seconds from ``respond`` to the first token, if one came."""
        if self.first_token_at is None:
            return None
        return self.first_token_at - self.submitted_at
