"""Conversation memory: the system prompt, user turns kept as audio, assistant turns as text.

User turns are kept as their audio embeddings (Ultravox makes no transcript), assistant turns as
the text that was actually spoken. The prompt is laid out in the Llama-3 chat format, with each
user turn's audio embeddings where its ``<|audio|>`` placeholder stands.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import torch
    from transformers import PreTrainedTokenizerBase

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
    """A user turn typed rather than spoken, as token ids."""

    text: str
    token_ids: list[int]


@dataclass
class AssistantTurn:
    """An assistant turn, as the text that was spoken (and its token ids)."""

    text: str
    token_ids: list[int]


Turn = UserTurn | UserTextTurn | AssistantTurn


class ContextOverflowError(ValueError):
    """The newest turn alone does not fit the token budget."""


class ChatFormat:
    """Token layout of the Llama-3 chat format, with audio placeholders."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer
        specials = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
        ids = tokenizer.convert_tokens_to_ids(specials)
        if any(i is None or i == tokenizer.unk_token_id for i in ids):
            raise ValueError(
                "the tokenizer is not a Llama-3 tokenizer (it lacks "
                f"{', '.join(specials)}); Ultravox on Llama 3 needs the repo's own tokenizer.json"
            )
        self.bos_id, _, _, self.eot_id = ids
        self._headers: dict[str, list[int]] = {}

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def header(self, role: str) -> list[int]:
        if role not in self._headers:
            self._headers[role] = self.encode(f"<|start_header_id|>{role}<|end_header_id|>\n\n")
        return self._headers[role]

    def system(self, prompt: str) -> list[int]:
        return [self.bos_id, *self.header("system"), *self.encode(prompt), self.eot_id]

    def turn(self, turn: Turn) -> list[PromptItem]:
        if isinstance(turn, UserTurn):
            audio: list[PromptItem] = [(turn.key, i) for i in range(turn.num_tokens)]
            return [*self.header("user"), *audio, self.eot_id]
        role = "user" if isinstance(turn, UserTextTurn) else "assistant"
        return [*self.header(role), *turn.token_ids, self.eot_id]


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
        chat_format: ChatFormat | None = None,
    ) -> None:
        if max_context_tokens < 64:
            raise ValueError("max_context_tokens must be at least 64")
        self.system_prompt = system_prompt
        self.chat_format = chat_format
        self.max_context_tokens = max_context_tokens
        self.turns: list[Turn] = []
        self.lock = threading.Lock()
        # The engine's reusable KV cache and the prompt positions it holds.
        self.kv_cache: Any = None
        self.kv_items: list[PromptItem] = []
        self.active_reply: Any = None

    def reset(self) -> None:
        """Forget every turn (and the cache); the system prompt stays."""
        with self.lock:
            self.turns.clear()
            self.kv_cache = None
            self.kv_items = []

    @property
    def num_user_turns(self) -> int:
        return sum(isinstance(t, UserTurn | UserTextTurn) for t in self.turns)

    def set_last_assistant_text(self, text: str) -> None:
        """Replace the last assistant turn by what was actually heard (empty text drops it)."""
        if self.chat_format is None:
            raise RuntimeError("create conversations with engine.new_conversation()")
        with self.lock:
            if not self.turns or not isinstance(self.turns[-1], AssistantTurn):
                raise ValueError("the conversation has no assistant turn to replace")
            if text.strip():
                self.turns[-1] = AssistantTurn(text, self.chat_format.encode(text))
            else:
                self.turns.pop()

    def prompt(
        self, fmt: ChatFormat, new_turn: UserTurn | UserTextTurn, reserve: int
    ) -> list[PromptItem]:
        """Prompt positions for a reply to ``new_turn``, dropping the oldest turns to fit.

        ``reserve`` positions are kept free for the reply. Dropped turns are gone for good.
        """
        system = fmt.system(self.system_prompt)
        tail = [*fmt.turn(new_turn), *fmt.header("assistant")]
        budget = self.max_context_tokens - reserve - len(system) - len(tail)
        if budget < 0:
            raise ContextOverflowError(
                f"this turn needs {len(system) + len(tail) + reserve} positions with the system "
                f"prompt and the reply, more than the budget of {self.max_context_tokens}; send "
                "shorter audio, a shorter system prompt, or raise max_context_tokens"
            )
        with self.lock:
            rendered = [fmt.turn(t) for t in self.turns]
            used = sum(len(r) for r in rendered)
            drop = 0
            while used > budget:
                # Drop the oldest exchange: a user turn and the assistant turns that follow it.
                used -= len(rendered[drop])
                drop += 1
                while drop < len(self.turns) and isinstance(self.turns[drop], AssistantTurn):
                    # (an assistant turn belongs to the user turn before it)
                    used -= len(rendered[drop])
                    drop += 1
            del self.turns[:drop]
            rendered = rendered[drop:]
        return [*system, *(i for r in rendered for i in r), *tail]

    def commit(self, user: UserTurn | UserTextTurn, reply: AssistantTurn | None) -> None:
        """Record a finished exchange."""
        with self.lock:
            self.turns.append(user)
            if reply is not None and reply.text.strip():
                self.turns.append(reply)
