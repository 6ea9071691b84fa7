"""What both Ultravox backends share: a reply's hand-off to the caller, its stream, and the
engine's public interface (input checks, conversations, one reply at a time per conversation).

A backend supplies its kind of reply (:attr:`EngineBase.reply_class`), where a reply runs
(:meth:`EngineBase._submit`) and the default context budget (:meth:`EngineBase._context_budget`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any, ClassVar, TypeVar

import numpy as np

from airvoice.engines.ultravox.chat_template import ChatTemplate
from airvoice.engines.ultravox.config import SAMPLE_RATE, UltravoxConfig
from airvoice.engines.ultravox.conversation import DEFAULT_SYSTEM_PROMPT, Conversation
from airvoice.engines.ultravox.generation import END_OF_TURN_TOKENS, GenerationSettings, ReplyStats
from airvoice.engines.ultravox.loading import (
    UltravoxFiles,
    generation_defaults,
    load_feature_extractor,
    load_tokenizer,
)
from airvoice.engines.ultravox.processor import AudioProcessor, prepare_audio
from airvoice.errors import AudioInputError, ConversationBusyError

E = TypeVar("E", bound="EngineBase")


class Reply:
    """One reply in progress: its input and settings, its stats, and the queue of text deltas
    that the backend fills (from any thread) and the caller's loop drains."""

    def __init__(
        self,
        engine: Any,
        conversation: Conversation,
        user_input: np.ndarray | str,
        settings: GenerationSettings,
        logprobs: int,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.engine = engine
        self.conversation = conversation
        self.user_input = user_input
        self.settings = settings
        self.num_logprobs = logprobs
        self.loop = loop
        """The caller's event loop, where the deltas are delivered."""
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.finished: concurrent.futures.Future[ReplyStats] = concurrent.futures.Future()
        self.stats = ReplyStats(submitted_at=time.perf_counter())
        self.cancelled = False

    def cancel(self) -> None:
        """Ask the backend to stop this reply."""
        self.cancelled = True

    def _emit(self, kind: str, value: Any) -> None:
        # RuntimeError: the caller's event loop is gone, nobody is listening.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(self.queue.put_nowait, (kind, value))

    def _end(self, error: BaseException | None) -> None:
        """The last act of a reply (already committed or dropped): free the conversation for
        the next one, tell the stream, resolve :attr:`finished`."""
        conv = self.conversation
        with conv.lock:
            if conv.active_reply is self:
                conv.active_reply = None
        if error is not None:
            self._emit("error", error)
        else:
            self._emit("done", None)
        self.finished.set_result(self.stats)


class ReplyStream(AsyncIterator[str]):
    """The streamed text of one reply. Iterate it for deltas; ``cancel()`` stops it (barge-in)."""

    def __init__(self, reply: Reply) -> None:
        self._reply = reply
        self._ended = False
        self.text = ""

    @property
    def stats(self) -> ReplyStats:
        return self._reply.stats

    def __aiter__(self) -> ReplyStream:
        return self

    async def __anext__(self) -> str:
        if self._ended:
            raise StopAsyncIteration
        try:
            kind, value = await self._reply.queue.get()
        except BaseException:
            self.cancel()
            raise
        if kind == "delta":
            self.text += value
            return value
        self._ended = True
        if kind == "error":
            raise value
        raise StopAsyncIteration

    def cancel(self) -> None:
        """Stop generating (barge-in); what was streamed so far stays the reply."""
        self._reply.cancel()

    async def aclose(self) -> None:
        self.cancel()
        self._ended = True

    async def wait_finished(self) -> ReplyStats:
        """Wait until the reply has ended and is committed to the conversation."""
        await asyncio.wrap_future(self._reply.finished)
        return self._reply.stats


def stop_ids(defaults: dict[str, Any], vocab: dict[str, int]) -> frozenset[int]:
    """The ids that end a reply: the checkpoint's ``eos_token_id`` (one or a list) and the
    end-of-turn tokens the tokenizer has."""
    eos = defaults.get("eos_token_id")
    ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
    ids.update(vocab[t] for t in END_OF_TURN_TOKENS if t in vocab)
    return frozenset(int(i) for i in ids)


def health_block(name: str, running: int, **measured: Any) -> dict[str, Any]:
    """An engine's ``/health`` block, every key present: ``name``, ``kv_cache_usage`` (0-1),
    ``running``, ``waiting``, ``prefix_cache_hit_rate``, ``kv_cache_tokens`` and
    ``session_capacity`` (the conversations the engine holds at once; None: no limit of its
    own). ``measured`` gives the others; None (``waiting``: 0) where the engine has no such
    thing: only vLLM has a KV pool, a prefix cache and a queue."""
    block: dict[str, Any] = {
        "name": name,
        "kv_cache_usage": None,
        "running": running,
        "waiting": 0,
        "prefix_cache_hit_rate": None,
        "kv_cache_tokens": None,
        "session_capacity": None,
    }
    unknown = set(measured) - set(block)
    if unknown:
        raise KeyError(f"not a /health engine key: {sorted(unknown)}")
    return block | measured


class EngineBase(ABC):
    """The public interface of an Ultravox engine, on a backend's hooks.

    Loaded once per process and key (:meth:`_load_once`); :meth:`new_conversation` makes a
    conversation, :meth:`respond` / :meth:`respond_text` stream a reply to it.
    """

    name: ClassVar[str]
    """The backend's name, as ``/health`` reports it."""
    reply_class: ClassVar[type[Reply]]
    """The backend's kind of :class:`Reply`, made with :class:`Reply`'s arguments."""

    _loaded: ClassVar[dict[tuple[Any, ...], EngineBase]] = {}
    _load_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(
        self,
        files: UltravoxFiles,
        config: UltravoxConfig,
        settings: GenerationSettings | None,
        generation: dict[str, Any] | None,
    ) -> None:
        self.files = files
        self.config = config
        self.tokenizer = load_tokenizer(files)
        self.chat_template = ChatTemplate(self.tokenizer)
        self.processor = AudioProcessor(load_feature_extractor(files, config), config)
        defaults = generation_defaults(files)
        if settings is None:
            settings = GenerationSettings.from_generation_config(defaults, **(generation or {}))
        self.settings = settings
        self.stop_ids = stop_ids(defaults, self.tokenizer.get_vocab())

    @classmethod
    def _load_once(cls: type[E], key: tuple[Any, ...], build: Callable[[], E]) -> E:
        """The engine of this backend loaded under ``key``, built by ``build`` the first time."""
        with cls._load_lock:
            engine = cls._loaded.get((cls, *key))
            if engine is None:
                engine = cls._loaded[(cls, *key)] = build()
            assert isinstance(engine, cls)
            return engine

    def _forget(self) -> None:
        """Drop this engine from the per-process cache (a later load builds a new one)."""
        with self._load_lock:
            for key, engine in list(self._loaded.items()):
                if engine is self:
                    del self._loaded[key]

    def new_conversation(
        self, system_prompt: str = DEFAULT_SYSTEM_PROMPT, max_context_tokens: int | None = None
    ) -> Conversation:
        """A fresh conversation with a token budget of ``max_context_tokens`` (by default
        the backend's: see :meth:`_context_budget`)."""
        budget = self._context_budget(max_context_tokens)
        return Conversation(system_prompt, budget, chat_template=self.chat_template)

    def respond(
        self,
        conversation: Conversation,
        audio: np.ndarray,
        sample_rate: int = SAMPLE_RATE,
        *,
        logprobs: int = 0,
        **overrides: Any,
    ) -> ReplyStream:
        """Start a reply to ``audio`` (the user's turn) in ``conversation``.

        Returns at once with a stream of text deltas. Bad audio raises ``AudioInputError`` here.
        ``overrides`` change :class:`GenerationSettings` fields for this reply only; ``logprobs``
        records that many top log-probabilities per step in the reply's stats.
        """
        settings = replace(self.settings, **overrides) if overrides else self.settings
        samples = prepare_audio(audio, sample_rate, settings.max_audio_seconds)
        return self._start(conversation, samples, settings, logprobs)

    def respond_text(
        self, conversation: Conversation, text: str, *, logprobs: int = 0, **overrides: Any
    ) -> ReplyStream:
        """Start a reply to a typed user turn (same stream as :meth:`respond`)."""
        if not text.strip():
            raise AudioInputError("the text is empty: type something to send")
        settings = replace(self.settings, **overrides) if overrides else self.settings
        return self._start(conversation, text, settings, logprobs)

    def _start(
        self,
        conversation: Conversation,
        user_input: np.ndarray | str,
        settings: GenerationSettings,
        logprobs: int,
    ) -> ReplyStream:
        loop = asyncio.get_running_loop()
        reply = self.reply_class(self, conversation, user_input, settings, logprobs, loop)
        with conversation.lock:
            active = conversation.active_reply
            if active is not None and not active.cancelled:
                raise ConversationBusyError(
                    "this conversation is still replying; cancel that reply (barge-in) before "
                    "starting the next one"
                )
            conversation.active_reply = reply
        self._submit(reply, active)
        return ReplyStream(reply)

    # -- the backend's hooks -------------------------------------------------------------
    @abstractmethod
    def _context_budget(self, requested: int | None) -> int:
        """A new conversation's token budget, given the caller's (None: the default)."""

    @abstractmethod
    def _submit(self, reply: Reply, previous: Reply | None) -> None:
        """Run ``reply``; ``previous`` is the conversation's cancelled reply, if one has not
        ended yet."""

    @abstractmethod
    def health(self) -> dict[str, Any]:
        """The ``engine`` block of ``/health`` (see :func:`health_block`)."""

    @abstractmethod
    def close(self) -> None:
        """Release what the engine holds and :meth:`_forget` it."""
