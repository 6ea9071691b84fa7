"""Prompts rendered by the checkpoint's own chat template, with ``<|audio|>`` placeholders.

The reference renders a conversation with ``tokenizer.apply_chat_template(turns,
add_generation_prompt=True, tokenize=False)`` (fixie-ai/ultravox
``ultravox/model/ultravox_pipeline.py``, ``UltravoxPipeline.preprocess``), each user audio turn's
content being ``<|audio|>``; its processor then splits the text at each ``<|audio|>``, tokenizes
the pieces without special tokens and puts the audio tokens between them
(``ultravox/model/ultravox_processing.py``, ``UltravoxProcessor.__call__``). The template, not our
code, decides the format, so checkpoints whose text model is not Llama work too.

Meta's Llama 3.1/3.2 templates write "Today Date: <date_string>" into the system message; we
pass ``date_string`` fixed at the conversation's start, so the prompt prefix (and the KV cache
that holds it) stays the same across turns and across midnight.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from transformers import PreTrainedTokenizerBase

AUDIO_PLACEHOLDER = "<|audio|>"
"""Where a user turn's audio goes, in message content and in the rendered prompt."""

DATE_FORMAT = "%d %b %Y"
"""How Meta's Llama 3.1/3.2 templates write the date (``strftime_now("%d %b %Y")``)."""

Message = dict[str, str]
"""One chat message: ``{"role": "system" | "user" | "assistant", "content": str}``."""


def date_string(day: datetime.date) -> str:
    """``day`` as the Llama 3.x templates' ``date_string`` (e.g. ``29 Nov 2026``)."""
    return day.strftime(DATE_FORMAT)


class ChatTemplate:
    """A tokenizer's own chat template, rendering messages with ``<|audio|>`` placeholders.

    Another backend (e.g. vLLM) calls ``render(messages, day)`` for the prompt text, with one
    ``<|audio|>`` per audio user turn and ``day`` the conversation's start date, and lets its
    processor expand each placeholder; or ``encode(messages, day, counts, audio_token_id)`` for
    the token ids with each placeholder already expanded to ``counts[i]`` copies of
    ``audio_token_id`` (``counts[i] = sum(AudioProcessor.token_counts(samples_i))``).
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                "the tokenizer has no chat_template: use the Ultravox repo's own "
                "tokenizer_config.json (it carries the template the model was trained with)"
            )
        self.tokenizer = tokenizer

    def render(
        self, messages: Sequence[Message], day: datetime.date, add_generation_prompt: bool = True
    ) -> str:
        """The prompt text, as ``apply_chat_template(..., tokenize=False)`` renders it."""
        return self.tokenizer.apply_chat_template(
            list(messages),
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            date_string=date_string(day),
        )

    def encode_text(self, text: str) -> list[int]:
        """Token ids of ``text`` without added special tokens (as the reference tokenizes)."""
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def encode_segments(self, messages: Sequence[Message], day: datetime.date) -> list[list[int]]:
        """Token ids of the rendered prompt's pieces between ``<|audio|>`` placeholders.

        One more piece than placeholders; each piece is tokenized on its own, as the reference
        processor does.
        """
        return [
            self.encode_text(part) for part in self.render(messages, day).split(AUDIO_PLACEHOLDER)
        ]

    def encode(
        self,
        messages: Sequence[Message],
        day: datetime.date,
        audio_token_counts: Sequence[int],
        audio_token_id: int,
    ) -> list[int]:
        """Prompt token ids, the i-th ``<|audio|>`` expanded to ``audio_token_counts[i]`` ids."""
        segments = self.encode_segments(messages, day)
        if len(segments) != len(audio_token_counts) + 1:
            raise ValueError(
                f"the prompt has {len(segments) - 1} {AUDIO_PLACEHOLDER} placeholders for "
                f"{len(audio_token_counts)} audio inputs: give one audio per placeholder"
            )
        ids = list(segments[0])
        for count, segment in zip(audio_token_counts, segments[1:], strict=True):
            ids += [audio_token_id] * count
            ids += segment
        return ids


def without_placeholder(text: str) -> str:
    """``text`` with any ``<|audio|>`` removed, so typed text cannot claim audio positions."""
    return text.replace(AUDIO_PLACEHOLDER, "")
