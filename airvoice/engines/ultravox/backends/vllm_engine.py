"""``VllmUltravoxEngine``: the Ultravox engine on vLLM, one ``AsyncLLM`` shared by every session.

Each turn sends the whole conversation, rendered by the shared chat format: token ids with one
``<|audio|>`` placeholder per kept spoken turn, that turn's audio as a multi-modal item with a
stable uuid, and a ``cache_salt`` per conversation. vLLM's prefix cache (which hashes the audio
uuids and the salt) skips what it has already computed for that conversation; continuous
batching serves every session in one step. Barge-in aborts the request.

The ``AsyncLLM`` lives on an event loop of its own (a daemon thread): callers on any loop get
their deltas through thread-safe hand-offs, as with the torch engine's worker thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from airvoice.config import ServerConfig, use_fp8
from airvoice.engines.ultravox.backends.base import EngineBase, Reply, health_block
from airvoice.engines.ultravox.backends.vllm_plugin import ARCHITECTURE, register
from airvoice.engines.ultravox.chat_template import AUDIO_PLACEHOLDER
from airvoice.engines.ultravox.config import SAMPLE_RATE, UltravoxConfig
from airvoice.engines.ultravox.conversation import (
    AssistantTurn,
    Conversation,
    PromptItem,
    UserTextTurn,
    UserTurn,
)
from airvoice.engines.ultravox.generation import GenerationSettings
from airvoice.engines.ultravox.loading import (
    UltravoxFiles,
    check_files,
    locate_files,
)

log = logging.getLogger(__name__)

GIB = 1 << 30
MAX_AUDIO_TURNS = 128
"""Spoken turns one prompt may carry (vLLM's per-prompt limit; older turns are dropped)."""


@dataclass(frozen=True)
class VllmSizing:
    """How the ``AsyncLLM`` is sized and run; :meth:`for_device` picks GPU or CPU defaults."""

    max_model_len: int = 8192
    gpu_memory_utilization: float = 0.85
    tensor_parallel_size: int = 1
    quantization: str | None = None
    kv_cache_dtype: str = "auto"
    dtype: str = "auto"
    enforce_eager: bool = False
    block_size: int | None = None
    max_num_batched_tokens: int | None = None
    max_num_seqs: int = 64
    max_audio_seconds: float = 120.0
    seed: int = 0
    kv_cache_memory_bytes: int | None = None
    """The KV cache's size; None: what ``gpu_memory_utilization`` leaves (GPU only: vLLM's
    CPU default takes half the RAM, so the CPU sizing sets 1 GiB)."""
    workers_in_process: bool = False
    """Run the model in the engine core's process (no separate worker process to start)."""

    @classmethod
    def for_device(
        cls, config: ServerConfig, files: UltravoxFiles, ultravox: UltravoxConfig
    ) -> VllmSizing:
        """GPU: CUDA graphs, FP8 on Ada and newer for large weights. CPU: eager, small blocks."""
        import torch

        from airvoice.config import resolve_device, resolve_dtype

        device = resolve_device(config.device)
        dtype = str(resolve_dtype(device, config.dtype)).removeprefix("torch.")
        kv_bytes = None if config.kv_cache_gib is None else int(config.kv_cache_gib * GIB)
        base = cls(
            max_model_len=config.max_model_len,
            gpu_memory_utilization=config.gpu_memory_utilization,
            tensor_parallel_size=config.tensor_parallel_size,
            dtype=dtype,
            kv_cache_memory_bytes=kv_bytes,
        )
        if device.type != "cuda":
            return replace(
                base,
                kv_cache_memory_bytes=kv_bytes or GIB,
                enforce_eager=True,
                block_size=32,
                max_num_batched_tokens=512,
                workers_in_process=True,
            )
        fp8 = config.quantization == "fp8"
        if config.quantization == "auto":
            props = torch.cuda.get_device_properties(device)
            fp8 = use_fp8(
                (props.major, props.minor), _weight_bytes(files, ultravox), props.total_memory
            )
        if fp8:
            return replace(base, quantization="fp8", kv_cache_dtype="fp8")
        return base


def _weight_bytes(files: UltravoxFiles, config: UltravoxConfig) -> int:
    """Bytes of the language model's weights in bf16 (from the safetensors headers' sizes)."""
    from airvoice.engines.ultravox.loading import weight_files

    directory = files.text_model_dir
    return sum(p.stat().st_size for p in weight_files(directory, config.text_model_id))


def model_view(files: UltravoxFiles, root: Path) -> Path:
    """A directory vLLM can load offline: the Ultravox repo's files (linked), and a config.json
    that names the language and audio models by their local directories.

    vLLM's Ultravox config resolves ``text_model_id``/``audio_model_id`` as soon as it is built;
    local paths make that an offline look-up of files we have already checked.
    """
    view = root / "ultravox"
    view.mkdir(parents=True, exist_ok=True)
    for path in files.ultravox_dir.iterdir():
        if path.is_file() and path.name != "config.json":
            (view / path.name).symlink_to(path.resolve())
    raw = json.loads((files.ultravox_dir / "config.json").read_text(encoding="utf-8"))
    raw.pop("auto_map", None)  # vLLM has the model: never look for the hub's remote code
    if files.text_model_dir != files.ultravox_dir:
        raw["text_model_id"] = str(files.text_model_dir.resolve())
    else:
        raw.pop("text_model_id", None)
    if files.audio_model_dir is not None:
        raw["audio_model_id"] = str(files.audio_model_dir.resolve())
    elif "audio_config" in raw:
        raw["audio_model_id"] = None
    (view / "config.json").write_text(json.dumps(raw, indent=2), encoding="utf-8")
    return view


@dataclass
class EngineStats:
    """What vLLM's scheduler last reported (for ``/health`` and ``/metrics``)."""

    kv_cache_usage: float | None = None
    running: int = 0
    waiting: int = 0
    prefix_cache_queries: int = 0
    prefix_cache_hits: int = 0

    @property
    def prefix_cache_hit_rate(self) -> float | None:
        if not self.prefix_cache_queries:
            return None
        return self.prefix_cache_hits / self.prefix_cache_queries


def _stat_logger_factory(stats: EngineStats) -> Any:
    """A vLLM stat logger class that copies each scheduler report into ``stats``."""
    from vllm.v1.metrics.loggers import StatLoggerBase

    class _Recorder(StatLoggerBase):
        def __init__(self, vllm_config: Any, engine_index: int = 0) -> None:
            pass

        def record(self, scheduler_stats: Any, iteration_stats: Any, *args: Any, **kw: Any) -> None:
            if scheduler_stats is None:
                return
            stats.kv_cache_usage = float(scheduler_stats.kv_cache_usage)
            stats.running = int(scheduler_stats.num_running_reqs)
            stats.waiting = int(scheduler_stats.num_waiting_reqs)
            prefix = scheduler_stats.prefix_cache_stats
            if prefix is not None:
                stats.prefix_cache_queries += int(prefix.queries)
                stats.prefix_cache_hits += int(prefix.hits)

        def log_engine_initialized(self) -> None:
            pass

    return _Recorder


def kv_capacity(vllm_config: Any, max_num_seqs: int) -> tuple[int, int]:
    """The tokens vLLM's KV cache holds, and how many conversations of ``max_model_len``
    tokens fit in it at once (at most ``max_num_seqs``, what one step schedules): vLLM's own
    "Maximum concurrency" figure, floored (``update_kv_cache_capacity`` in
    ``vllm/v1/core/kv_cache_utils.py``; the front end gets it in the engine core's handshake).
    """
    cache = vllm_config.cache_config
    tokens = getattr(cache, "kv_cache_size_tokens", None)
    if tokens is None:  # an engine core that did not report it: whole blocks
        tokens = int(cache.num_gpu_blocks or 0) * int(cache.block_size)
    max_len = int(vllm_config.model_config.max_model_len)
    return int(tokens), max(1, min(max_num_seqs, int(tokens) // max_len))


class _LoopThread:
    """An asyncio loop on a daemon thread: the ``AsyncLLM`` and its output handler live here."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="airvoice-vllm", daemon=True
        )
        self._thread.start()

    def submit(self, coro: Any) -> concurrent.futures.Future[Any]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


class _VllmReply(Reply):
    """One request: runs on the engine's loop, hands deltas to the caller's loop."""

    engine: VllmUltravoxEngine

    def __init__(self, *args: Any) -> None:  # Reply's arguments
        super().__init__(*args)
        self.request_id = f"airvoice-{uuid.uuid4().hex}"
        self.previous: Reply | None = None
        """A cancelled reply of the same conversation that must commit before this one reads it."""
        self._submitted = threading.Event()

    def cancel(self) -> None:
        if self.cancelled or self.finished.done():
            return
        self.cancelled = True
        if self._submitted.is_set():
            self.engine.runtime.loop.submit(self.engine.llm.abort(self.request_id))

    async def run(self) -> None:
        """On the engine's loop: build the prompt, stream the reply, commit it."""
        user: UserTurn | UserTextTurn | None = None
        error: BaseException | None = None
        text, tokens = "", []
        try:
            if self.previous is not None:  # barge-in: the cut reply goes into memory first
                await asyncio.wrap_future(self.previous.finished)
                self.previous = None
            user = self.engine._user_turn(self.user_input)
            self.stats.audio_tokens = user.num_tokens if isinstance(user, UserTurn) else 0
            prompt = self.engine._prompt(self.conversation, user, self.settings)
            params = self.engine._sampling_params(self.settings, self.num_logprobs)
            if self.cancelled:
                return
            self._submitted.set()
            aborted = False
            async for output in self.engine.llm.generate(prompt, params, self.request_id):
                if self.cancelled and not aborted:  # cancelled while vLLM was taking it in
                    aborted = True
                    await self.engine.llm.abort(self.request_id)
                if self.stats.prompt_tokens == 0 and output.prompt_token_ids is not None:
                    self.stats.prompt_tokens = len(output.prompt_token_ids)
                    self.stats.reused_tokens = int(output.num_cached_tokens or 0)
                completion = output.outputs[0]
                if completion.token_ids and self.stats.first_token_at is None:
                    self.stats.first_token_at = time.perf_counter()
                ids = [t for t in completion.token_ids if t not in self.engine.stop_ids]
                tokens.extend(ids)
                if completion.logprobs:
                    self.stats.logprobs.extend(
                        {t: float(lp.logprob) for t, lp in step.items()}
                        for step in completion.logprobs
                    )
                if completion.text:
                    text += completion.text
                    self._emit("delta", completion.text)
                if completion.finish_reason is not None:
                    reason = completion.finish_reason
                    self.stats.finish_reason = "cancelled" if reason == "abort" else reason
                if self.cancelled and self.stats.finish_reason is None:
                    self.stats.finish_reason = "cancelled"
        except asyncio.CancelledError:
            self.stats.finish_reason = "cancelled"
        except Exception as exc:
            log.exception("a vLLM reply failed")
            error = exc
        finally:
            self._finish(user, text, tokens, error)

    def _finish(
        self,
        user: UserTurn | UserTextTurn | None,
        text: str,
        tokens: list[int],
        error: BaseException | None,
    ) -> None:
        stats = self.stats
        stats.finished_at = time.perf_counter()
        stats.generated_tokens = len(tokens)
        stats.token_ids = tokens
        if stats.finish_reason is None:
            stats.finish_reason = "error" if error else "cancelled"
        if user is not None and error is None and (self._submitted.is_set()):
            self.conversation.commit(user, AssistantTurn(text) if tokens else None)
        with self.engine._pending_lock:
            self.engine._pending.discard(self)
        self._end(error)


class VllmRuntime:
    """One ``AsyncLLM`` on its own event loop thread, shared by every engine of the process that
    runs the same model with the same sizing; shut down when the last of them closes."""

    _running: dict[tuple[Any, ...], VllmRuntime] = {}  # noqa: RUF012
    _lock = threading.Lock()

    def __init__(
        self, files: UltravoxFiles, sizing: VllmSizing, hf_overrides: dict[str, Any]
    ) -> None:
        self.files = files
        self.sizing = sizing
        self.hf_overrides = hf_overrides
        self.stats = EngineStats()
        self.users = 0
        self.tmp = Path(tempfile.mkdtemp(prefix="airvoice-vllm-"))
        self.loop = _LoopThread()
        try:
            self.llm = self.loop.submit(self._start_llm()).result()
        except BaseException:
            self.loop.stop()
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        self.kv_cache_tokens, self.session_capacity = kv_capacity(
            self.llm.vllm_config, sizing.max_num_seqs
        )

    @classmethod
    def acquire(
        cls, files: UltravoxFiles, sizing: VllmSizing, hf_overrides: dict[str, Any]
    ) -> VllmRuntime:
        key = (files, sizing, json.dumps(hf_overrides, sort_keys=True))
        with cls._lock:
            runtime = cls._running.get(key)
            if runtime is None:
                runtime = cls._running[key] = cls(files, sizing, hf_overrides)
            runtime.users += 1
            return runtime

    def release(self) -> None:
        with self._lock:
            self.users -= 1
            if self.users > 0:
                return
            for key, runtime in list(self._running.items()):
                if runtime is self:
                    del self._running[key]
        with contextlib.suppress(Exception):
            self.loop.submit(_shutdown(self.llm)).result(30)
        self.loop.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    async def _start_llm(self) -> Any:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every file is local, checked already
        os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
        if self.sizing.workers_in_process:
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("DO_NOT_TRACK", "1")
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        register()  # the entry point does this in vLLM's other processes
        s = self.sizing
        view = model_view(self.files, self.tmp)
        has_tokenizer = (self.files.ultravox_dir / "tokenizer.json").is_file()
        args = AsyncEngineArgs(
            model=str(view),
            tokenizer=str(view if has_tokenizer else self.files.text_model_dir),
            trust_remote_code=False,
            hf_overrides=self.hf_overrides,
            dtype=s.dtype,
            max_model_len=s.max_model_len,
            gpu_memory_utilization=s.gpu_memory_utilization,
            kv_cache_memory_bytes=s.kv_cache_memory_bytes,
            tensor_parallel_size=s.tensor_parallel_size,
            quantization=s.quantization,
            kv_cache_dtype=s.kv_cache_dtype,
            enforce_eager=s.enforce_eager,
            block_size=s.block_size,
            max_num_batched_tokens=s.max_num_batched_tokens,
            max_num_seqs=s.max_num_seqs,
            enable_prefix_caching=True,
            limit_mm_per_prompt={
                "audio": {
                    "count": MAX_AUDIO_TURNS,
                    "length": int(s.max_audio_seconds * SAMPLE_RATE),
                }
            },
            seed=s.seed,
            generation_config="vllm",
        )
        return AsyncLLM.from_engine_args(args, stat_loggers=[_stat_logger_factory(self.stats)])


class VllmUltravoxEngine(EngineBase):
    """Ultravox on vLLM: one ``AsyncLLM`` per process, every conversation batched together.

    Same interface as :class:`~airvoice.engines.ultravox.UltravoxEngine`: create it with
    :meth:`load`, a conversation with :meth:`new_conversation`, and stream a reply with
    ``async for delta in engine.respond(conversation, audio): ...``.
    """

    name = "vllm"
    reply_class = _VllmReply

    def __init__(
        self,
        files: UltravoxFiles,
        sizing: VllmSizing,
        settings: GenerationSettings | None = None,
        generation: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(files, check_files(files), settings, generation)
        self.sizing = sizing
        self.placeholder_ids = list(
            self.tokenizer.encode(AUDIO_PLACEHOLDER, add_special_tokens=False)
        )
        self.runtime = VllmRuntime.acquire(files, sizing, self._hf_overrides())
        self._pending: set[_VllmReply] = set()
        self._pending_lock = threading.Lock()

    @property
    def llm(self) -> Any:
        """The process's ``AsyncLLM`` (shared with every engine on the same model and sizing)."""
        return self.runtime.llm

    @property
    def engine_stats(self) -> EngineStats:
        return self.runtime.stats

    @classmethod
    def load(
        cls,
        ultravox: str | os.PathLike[str],
        text_model: str | os.PathLike[str] | None = None,
        audio_model: str | os.PathLike[str] | None = None,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        sizing: VllmSizing | None = None,
        settings: GenerationSettings | None = None,
        generation: dict[str, Any] | None = None,
    ) -> VllmUltravoxEngine:
        """Start (once per process) from local directories or repo ids in the local HF cache.

        ``settings`` and ``generation`` as for the torch engine's ``load``.
        """
        files = locate_files(ultravox, text_model, audio_model, cache_dir)
        sizing = sizing or VllmSizing()
        overrides = tuple(sorted((generation or {}).items()))
        return cls._load_once(
            (files, sizing, settings, overrides),
            lambda: cls(files, sizing, settings, dict(overrides)),
        )

    def _hf_overrides(self) -> dict[str, Any]:
        """Our architecture, and the id that marks the audio positions of vLLM's prompt.

        The reference's processor writes the tokenizer's EOS there (``audio_token_replacement``
        in ``ultravox_processing.py``). The id does not change the model's input (the positions
        hold audio embeddings), but vLLM's repetition penalty counts the prompt's ids
        (``apply_penalties`` in ``vllm/model_executor/layers/utils.py``): with EOS there it
        penalizes what the reference penalizes, EOS whenever the prompt has audio, and not the
        config's ``audio_token_index`` (32000 in the hub repos: an ordinary Llama 3 token).
        Without an EOS, an in-vocabulary id replaces an ``audio_token_index`` that lies past the
        tokenizer (vLLM rejects such ids).
        """
        overrides: dict[str, Any] = {"architectures": [ARCHITECTURE]}
        eos = self.tokenizer.eos_token_id
        index = self.config.extra.get("audio_token_index")
        if eos is not None:
            overrides["audio_token_index"] = int(eos)
        elif len(self.placeholder_ids) == 1 and (index is None or index >= len(self.tokenizer)):
            overrides["audio_token_index"] = self.placeholder_ids[0]
        return overrides

    # -- the backend's hooks --------------------------------------------------------------
    def _context_budget(self, requested: int | None) -> int:
        """The caller's budget or ``max_model_len``, whichever is less."""
        if requested is None:
            return self.sizing.max_model_len
        return min(requested, self.sizing.max_model_len)

    def _submit(self, reply: Reply, previous: Reply | None) -> None:
        assert isinstance(reply, _VllmReply)
        reply.previous = previous
        with self._pending_lock:
            self._pending.add(reply)
        self.runtime.loop.submit(reply.run())

    # -- prompt building (on the engine's loop) -------------------------------------------
    def _user_turn(self, user_input: np.ndarray | str) -> UserTurn | UserTextTurn:
        if isinstance(user_input, str):
            return UserTextTurn(user_input)
        count = self.processor.token_count(user_input.size)
        return UserTurn(None, samples=user_input, token_count=count, uuid=uuid.uuid4().hex)

    def _prompt(
        self, conversation: Conversation, user: UserTurn | UserTextTurn, s: GenerationSettings
    ) -> dict[str, Any]:
        """vLLM's prompt: token ids with one placeholder per spoken turn, the audio, its uuids."""
        with conversation.lock:
            spoken = [t for t in conversation.turns if isinstance(t, UserTurn)]
            excess = len(spoken) + isinstance(user, UserTurn) - MAX_AUDIO_TURNS
            if excess > 0:  # drop the oldest exchanges beyond vLLM's per-prompt audio limit
                cut = conversation.turns.index(spoken[excess]) if excess < len(spoken) else None
                del conversation.turns[:cut]
        items = conversation.prompt(self.chat_template, user, reserve=s.max_new_tokens)
        turns = {t.key: t for t in conversation.turns if isinstance(t, UserTurn)}
        if isinstance(user, UserTurn):
            turns[user.key] = user
        return build_prompt(items, turns, self.placeholder_ids, conversation.cache_salt)

    def _sampling_params(self, s: GenerationSettings, logprobs: int) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        return SamplingParams(
            temperature=s.temperature,
            top_p=s.top_p,
            top_k=s.top_k or 0,
            repetition_penalty=s.repetition_penalty,
            seed=s.seed,
            max_tokens=s.max_new_tokens,
            min_tokens=s.min_new_tokens,
            stop_token_ids=sorted(self.stop_ids),
            logprobs=logprobs or None,
            skip_special_tokens=True,
            output_kind=RequestOutputKind.DELTA,
        )

    @property
    def pending_replies(self) -> int:
        """Replies of this engine not yet ended."""
        with self._pending_lock:
            return len(self._pending)

    # -- health ---------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """The ``engine`` block of ``/health``."""
        s = self.engine_stats
        return health_block(
            self.name,
            s.running,
            waiting=s.waiting,
            kv_cache_usage=s.kv_cache_usage,
            prefix_cache_hit_rate=s.prefix_cache_hit_rate,
            kv_cache_tokens=self.runtime.kv_cache_tokens,
            session_capacity=self.runtime.session_capacity,
        )

    def close(self) -> None:
        """Forget this engine; vLLM shuts down when no engine of the process uses it."""
        self._forget()
        self.runtime.release()


async def _shutdown(llm: Any) -> None:
    llm.shutdown()


def build_prompt(
    items: list[PromptItem],
    turns: dict[int, UserTurn],
    placeholder_ids: list[int],
    cache_salt: str,
) -> dict[str, Any]:
    """Turn the shared prompt layout (token ids and audio positions) into vLLM's prompt.

    Each spoken turn's run of audio positions becomes one placeholder, which our processor
    expands back to the same number of positions.
    """
    ids: list[int] = []
    audio: list[tuple[np.ndarray, int]] = []
    uuids: list[str] = []
    previous: int | None = None
    for item in items:
        if isinstance(item, int):
            ids.append(item)
            previous = None
            continue
        key, _ = item
        if key != previous:
            turn = turns[key]
            ids.extend(placeholder_ids)
            audio.append((turn.samples, SAMPLE_RATE))
            uuids.append(turn.uuid)
            previous = key
    prompt: dict[str, Any] = {"prompt_token_ids": ids, "cache_salt": cache_salt}
    if audio:
        prompt["multi_modal_data"] = {"audio": audio}
        prompt["multi_modal_uuids"] = {"audio": uuids}
    return prompt
