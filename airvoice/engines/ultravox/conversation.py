"""Conversation memory: the system prompt, user turns kept as audio, assistant turns as text.

User turns are kept as their audio embeddings (Ultravox makes no transcript), assistant turns as
the text that was actually spoken. The prompt is rendered by the checkpoint's own chat template
(:mod:`~airvoice.engines.ultravox.chat_template`), each user audio turn's content being
``<|audio|>``, expanded to that turn's audio embeddings.
"""

from __future__ import annotations

import datetime
import itertools
import threading
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airvoice.engines.ultravox.chat_template import (
    AUDIO_PLACEHOLDER,
    ChatTemplate,
    Message,
    without_placeholder,
)

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch

DEFAULT_SYSTEM_PROMPT = (
    "You are a friendly voice assistant. Answer briefly and naturally, in plain spoken "
    "sentences without lists, markdown or emoji, because your words will be read aloud."
)

AudioItem = tuple[int, int]
"""A prompt position holding row ``i`` of audio turn ``key``: ``(key, i)``."""
PromptItem = int | AudioItem
"""One position of the prompt: a token id, or one audio embedding."""

_turn_keys = itertools.count(1)


@dataclass
class UserTurn:
    """A user turn as the model heard it: its audio embeddings (torch engine), or its samples
    and audio token count (vLLM engine, which re-sends the audio under a stable ``uuid``)."""

    embeddings: torch.Tensor | None
    key: int = field(default_factory=lambda: next(_turn_keys))
    samples: np.ndarray | None = field(default=None, repr=False)
    token_count: int = 0
    uuid: str = ""

    @property
    def num_tokens(self) -> int:
        if self.embeddings is None:
            return self.token_count
        return int(self.embeddings.shape[0])


@dataclass
class UserTextTurn:
    """A user turn typed rather than spoken."""

    text: str


@dataclass
class AssistantTurn:
    """An assistant turn, as the text that was spoken."""

    text: str


Turn = UserTurn | UserTextTurn | AssistantTurn


class ContextOverflowError(ValueError):
    """The newest turn alone does not fit the token budget."""


class Conversation:
    """One session's memory, kept within a token budget.

    The engine appends a user turn and the assistant's reply after each ``respond``; the server
    replaces the reply with what the user actually heard when it was interrupted
    (:meth:`set_last_assistant_text`). The oldest turns are dropped first when the budget is
    exceeded; the system prompt never is.
    """

    def __init__(
        self,
        system_prompt: str = DEFAULT_SYSTEM_PROMPT,
        max_context_tokens: int = 4096,
        chat_template: ChatTemplate | None = None,
        started: datetime.date | None = None,
    ) -> None:
        if max_context_tokens < 64:
            raise ValueError("max_context_tokens must be at least 64")
        self.system_prompt = system_prompt
        self.chat_template = chat_template
        self.max_context_tokens = max_context_tokens
        self.started = started or datetime.date.today()
        """The date the prompt shows: fixed when the conversation starts, for a stable prefix."""
        self.turns: list[Turn] = []
        self.cache_salt = uuid.uuid4().hex
        """Salts this conversation's entries in a shared prefix cache (vLLM): never shared."""
        self.lock = threading.Lock()
        # The engine's reusable KV cache and the prompt positions it holds.
        self.kv_cache: Any = None
        self.kv_items: list[PromptItem] = []
        self.active_reply: Any = None

    def reset(self) -> None:
        """Forget every turn (and the cache); the system prompt and start date stay."""
        with self.lock:
            self.turns.clear()
            self.kv_cache = None
            self.kv_items = []

    @property
    def num_user_turns(self) -> int:
        return sum(isinstance(t, UserTurn | UserTextTurn) for t in self.turns)

    def set_last_assistant_text(self, text: str) -> None:
        """Replace the last assistant turn by what was actually heard (empty text drops it)."""
        with self.lock:
            if not self.turns or not isinstance(self.turns[-1], AssistantTurn):
                raise ValueError("the conversation has no assistant turn to replace")
            if text.strip():
                self.turns[-1] = AssistantTurn(text)
            else:
                self.turns.pop()

    def messages(self, turns: list[Turn]) -> list[Message]:
        """Chat messages for ``turns``: system prompt first, ``<|audio|>`` for each audio turn."""
        messages: list[Message] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": without_placeholder(self.system_prompt)})
        for turn in turns:
            if isinstance(turn, UserTurn):
                messages.append({"role": "user", "content": AUDIO_PLACEHOLDER})
            else:
                role = "user" if isinstance(turn, UserTextTurn) else "assistant"
                messages.append({"role": role, "content": without_placeholder(turn.text)})
        return messages

    def render(self, template: ChatTemplate, turns: list[Turn]) -> list[PromptItem]:
        """Prompt positions for ``turns`` and the assistant's header, through ``template``."""
        segments = template.encode_segments(self.messages(turns), self.started)
        audio = [t for t in turns if isinstance(t, UserTurn)]
        if len(segments) != len(audio) + 1:
            raise ValueError(
                f"the chat template rendered {len(segments) - 1} {AUDIO_PLACEHOLDER} placeholders "
                f"for {len(audio)} audio turns: the template must keep message content as it is"
            )
        items: list[PromptItem] = list(segments[0])
        for turn, segment in zip(audio, segments[1:], strict=True):
            items += [(turn.key, i) for i in range(turn.num_tokens)]
            items += segment
        return items

    def prompt(
        self, template: ChatTemplate, new_turn: UserTurn | UserTextTurn, reserve: int
    ) -> list[PromptItem]:
        """Prompt positions for a reply to ``new_turn``, dropping the oldest turns to fit.

        ``reserve`` positions are kept free for the reply. Dropped turns are gone for good.
        """
        with self.lock:
            drop = 0
            while True:
                items = self.render(template, [*self.turns[drop:], new_turn])
                if len(items) + reserve <= self.max_context_tokens:
                    break
                if drop >= len(self.turns):
                    raise ContextOverflowError(
                        f"this turn needs {len(items) + reserve} positions with the system "
                        f"prompt and the reply, more than the budget of {self.max_context_tokens}; "
                        "send shorter audio, a shorter system prompt, or raise max_context_tokens"
                    )
                # Drop the oldest exchange: a user turn and the assistant turns that follow it.
                drop += 1
                while drop < len(self.turns) and isinstance(self.turns[drop], AssistantTurn):
                    drop += 1
            del self.turns[:drop]
        return items

    def commit(self, user: UserTurn | UserTextTurn, reply: AssistantTurn | None) -> None:
        """Record a finished exchange."""
        with self.lock:
            self.turns.append(user)
            if reply is not None and reply.text.strip():
                self.turns.append(reply)
