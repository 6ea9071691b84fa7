"""``UltravoxEngine``: the user's audio plus the conversation so far, streamed into a text reply.

The engine runs its own decoding loop (prefill, then one token at a time) on one worker thread
shared by every conversation, so that it can reuse each conversation's KV cache, cancel between
steps, and interleave several conversations' steps on one device.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from typing import Any

import torch
from transformers import DynamicCache

from airvoice.config import resolve_device, resolve_dtype
from airvoice.engines.ultravox.backends.base import EngineBase, Reply, health_block
from airvoice.engines.ultravox.backends.torch_scheduler import RoundRobinScheduler
from airvoice.engines.ultravox.config import UltravoxConfig
from airvoice.engines.ultravox.conversation import (
    AssistantTurn,
    PromptItem,
    UserTextTurn,
    UserTurn,
)
from airvoice.engines.ultravox.generation import (
    GenerationSettings,
)
from airvoice.engines.ultravox.loading import (
    UltravoxFiles,
    load_model,
    locate_files,
)
from airvoice.engines.ultravox.modeling import UltravoxModel

log = logging.getLogger(__name__)


def penalize_repetition(logits: torch.Tensor, seen: torch.Tensor, penalty: float) -> torch.Tensor:
    """``logits`` with the tokens marked in the boolean ``seen`` penalized, as transformers'
    ``RepetitionPenaltyLogitsProcessor`` does: positive logits divided, negative multiplied."""
    if penalty == 1.0:
        return logits
    penalized = torch.where(logits < 0, logits * penalty, logits / penalty)
    return torch.where(seen, penalized, logits)


def sample_token(
    logits: torch.Tensor, settings: GenerationSettings, generator: torch.Generator | None
) -> int:
    """Pick the next token from one row of logits (already penalized for repetition)."""
    if settings.temperature == 0:
        return int(torch.argmax(logits))
    logits = logits.float() / settings.temperature
    if settings.top_k:
        kth = torch.topk(logits, min(settings.top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if settings.top_p < 1:
        ordered, order = torch.sort(logits, descending=True)
        probs = torch.softmax(ordered, dim=-1)
        # Keep the smallest set whose mass reaches top_p (always the most likely token).
        drop = probs.cumsum(-1) - probs > settings.top_p
        logits[order[drop]] = float("-inf")
    probs = torch.softmax(logits, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


def cache_argument(language_model: torch.nn.Module) -> str:
    """The name under which the LLM's ``forward`` takes its KV cache.

    transformers 5.24 renamed ``past_key_values`` to ``cache`` and warns at every call with the
    old name until 5.40 removes it; earlier releases know only ``past_key_values``.
    """
    parameters = inspect.signature(type(language_model).forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def _common_prefix(a: list[PromptItem], b: list[PromptItem]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


class _ReplyJob(Reply):
    """One reply, advanced one step at a time by the scheduler's worker thread."""

    engine: UltravoxEngine

    def __init__(self, *args: Any) -> None:  # Reply's arguments
        super().__init__(*args)
        self.generator = None
        if self.settings.seed is not None:
            self.generator = torch.Generator(device="cpu").manual_seed(self.settings.seed)
        self.user: UserTurn | UserTextTurn | None = None
        self.cache: DynamicCache | None = None
        self.cache_items: list[PromptItem] = []
        self.generated: list[int] = []
        self.emitted = ""
        self.pending_token: int | None = None
        self.seen = torch.zeros(0, dtype=torch.bool)

    # -- worker thread -------------------------------------------------------------------
    def step(self) -> bool:
        with torch.inference_mode():
            if self.user is None:
                logits = self._prefill()
                self.stats.first_logits = logits.float().cpu()
            else:
                logits = self._decode()
            if self.num_logprobs:
                top = torch.log_softmax(logits.float(), -1).topk(self.num_logprobs)
                pairs = zip(top.indices.tolist(), top.values.tolist(), strict=True)
                self.stats.logprobs.append(dict(pairs))
            logits = penalize_repetition(logits, self.seen, self.settings.repetition_penalty)
            if len(self.generated) < self.settings.min_new_tokens:
                logits = logits.clone()
                logits[list(self.engine.stop_ids)] = float("-inf")
            return self._take(sample_token(logits, self.settings, self.generator))

    def _prefill(self) -> torch.Tensor:
        engine, conv = self.engine, self.conversation
        if isinstance(self.user_input, str):
            self.user = UserTextTurn(self.user_input)
        else:
            features = engine.processor.features(self.user_input)
            self.user = UserTurn(engine.model.embed_audio(features))
        items = conv.prompt(engine.chat_template, self.user, reserve=self.settings.max_new_tokens)
        cache, keep = None, 0
        if self.settings.reuse_kv_cache and conv.kv_cache is not None:
            keep = min(_common_prefix(conv.kv_items, items), len(items) - 1)
            if keep > 0:
                cache = conv.kv_cache
                excess = cache.get_seq_length() - keep
                if excess > 0:
                    cache.crop(-excess)
        if cache is None:
            cache, keep = DynamicCache(config=engine.config.text_config), 0
        audio = {t.key: t.embeddings for t in conv.turns if isinstance(t, UserTurn)}
        if isinstance(self.user, UserTurn):
            audio[self.user.key] = self.user.embeddings
        embeds = engine.embed_items(items[keep:], audio)
        positions = torch.arange(keep, len(items), device=engine.device)[None]
        out = engine.model.language_model(
            inputs_embeds=embeds,
            **{engine.cache_kwarg: cache},
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
        )
        self.cache, self.cache_items = cache, list(items)
        # The tokens the repetition penalty counts: the prompt's, where the reference's input_ids
        # hold the EOS at each audio position (ultravox_processing.py), then the reply's.
        vocab = out.logits.shape[-1]
        prompt_ids = {i for i in items if isinstance(i, int) and i < vocab}
        if any(isinstance(i, tuple) for i in items) and engine.tokenizer.eos_token_id is not None:
            prompt_ids.add(int(engine.tokenizer.eos_token_id))
        self.seen = torch.zeros(vocab, dtype=torch.bool, device=out.logits.device)
        self.seen[list(prompt_ids)] = True
        self.stats.prompt_tokens = len(items)
        self.stats.audio_tokens = self.user.num_tokens if isinstance(self.user, UserTurn) else 0
        self.stats.reused_tokens = keep
        return out.logits[0, -1]

    def _decode(self) -> torch.Tensor:
        assert self.pending_token is not None
        engine = self.engine
        ids = torch.tensor([[self.pending_token]], device=engine.device)
        positions = torch.tensor([[len(self.cache_items)]], device=engine.device)
        out = engine.model.language_model(
            input_ids=ids,
            position_ids=positions,
            use_cache=True,
            **{engine.cache_kwarg: self.cache},
        )
        self.cache_items.append(self.pending_token)
        return out.logits[0, -1]

    def _take(self, token: int) -> bool:
        if self.stats.first_token_at is None:
            self.stats.first_token_at = time.perf_counter()
            self.stats.first_token_step = self.engine.decode_steps
        if token in self.engine.stop_ids:
            self.stats.finish_reason = "stop"
            return True
        self.generated.append(token)
        self.stats.token_ids = self.generated
        self.seen[token] = True
        self.pending_token = token
        self.stats.generated_tokens = len(self.generated)
        text = self.engine.tokenizer.decode(self.generated, skip_special_tokens=True)
        if (
            not text.endswith("\ufffd")
            and text.startswith(self.emitted)
            and len(text) > len(self.emitted)
        ):
            self._emit("delta", text[len(self.emitted) :])
            self.emitted = text
        if len(self.generated) >= self.settings.max_new_tokens:
            self.stats.finish_reason = "length"
            return True
        return False

    def finish(self, error: BaseException | None) -> None:
        conv = self.conversation
        self.stats.finished_at = time.perf_counter()
        if self.stats.finish_reason is None:
            self.stats.finish_reason = "error" if error else "cancelled"
        if self.user is not None and error is None:
            reply = AssistantTurn(self.emitted) if self.generated else None
            conv.commit(self.user, reply)
            if self.settings.reuse_kv_cache:
                conv.kv_cache, conv.kv_items = self.cache, self.cache_items
            else:
                conv.kv_cache, conv.kv_items = None, []
        elif error is not None:
            conv.kv_cache, conv.kv_items = None, []  # the cache may be half-written
        self.cache = None
        self._end(error)


class UltravoxEngine(EngineBase):
    """Ultravox loaded once per process; many conversations share it.

    Create one with :meth:`load`, a conversation with :meth:`new_conversation`, and stream a
    reply with ``async for delta in engine.respond(conversation, audio): ...``.
    """

    name = "torch"
    reply_class = _ReplyJob

    def __init__(
        self,
        files: UltravoxFiles,
        model: UltravoxModel,
        config: UltravoxConfig,
        device: torch.device,
        dtype: torch.dtype,
        settings: GenerationSettings | None = None,
        generation: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(files, config, settings, generation)
        self.model = model
        self.device = device
        self.dtype = dtype
        self.cache_kwarg = cache_argument(model.language_model)
        self._scheduler = RoundRobinScheduler()

    @classmethod
    def load(
        cls,
        ultravox: str | os.PathLike[str],
        text_model: str | os.PathLike[str] | None = None,
        audio_model: str | os.PathLike[str] | None = None,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        device: str = "auto",
        dtype: str = "auto",
        settings: GenerationSettings | None = None,
        generation: dict[str, Any] | None = None,
    ) -> UltravoxEngine:
        """Load (once per process) from local directories or repo ids in the local HF cache.

        Replies are sampled with ``settings`` if given, else with the checkpoint's
        ``generation_config.json`` defaults overridden by the non-None values of ``generation``
        (``GenerationSettings`` field names).
        """
        files = locate_files(ultravox, text_model, audio_model, cache_dir)
        torch_device = resolve_device(device)
        torch_dtype = resolve_dtype(torch_device, dtype)
        overrides = tuple(sorted((generation or {}).items()))

        def build() -> UltravoxEngine:
            model, config = load_model(files, torch_device, torch_dtype)
            return cls(files, model, config, torch_device, torch_dtype, settings, dict(overrides))

        return cls._load_once((files, str(torch_device), torch_dtype, settings, overrides), build)

    def _context_budget(self, requested: int | None) -> int:
        """The caller's budget, else the model's context capped at 8192."""
        if requested is not None:
            return requested
        limit = getattr(self.config.text_config, "max_position_embeddings", 8192)
        return min(int(limit), 8192)

    def _submit(self, reply: Reply, previous: Reply | None) -> None:
        # ``previous``, cancelled, is ahead in the worker's queue: it ends (and commits) first.
        reply.stats.submitted_step = self.decode_steps
        self._scheduler.submit(reply)

    def embed_items(self, items: list[PromptItem], audio: dict[int, torch.Tensor]) -> torch.Tensor:
        """Input embeddings ``[1, len(items), hidden]``: token embeddings and audio rows."""
        parts: list[torch.Tensor] = []
        run: list[int] = []

        def flush() -> None:
            if run:
                ids = torch.tensor(run, device=self.device)
                parts.append(self.model.embed_tokens(ids))
                run.clear()

        i = 0
        while i < len(items):
            item = items[i]
            if isinstance(item, int):
                run.append(item)
                i += 1
                continue
            flush()
            key, start = item
            end = start
            while i < len(items) and items[i] == (key, end):
                end += 1
                i += 1
            parts.append(audio[key][start:end].to(self.dtype))
        flush()
        return torch.cat(parts, dim=0)[None]

    @property
    def decode_steps(self) -> int:
        """Steps the worker has run so far (prefills and decoded tokens of every reply)."""
        return self._scheduler.steps

    @property
    def pending_replies(self) -> int:
        """Replies waiting for or running on the worker."""
        return self._scheduler.pending

    def health(self) -> dict[str, Any]:
        """The ``engine`` block of ``/health``: replies in progress (this engine keeps no shared
        KV pool or prefix cache and sets no session limit of its own)."""
        return health_block(self.name, self.pending_replies)

    def close(self) -> None:
        """Stop the worker thread and forget this engine in the per-process cache."""
        self._scheduler.close()
        self._forget()
