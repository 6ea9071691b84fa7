"""Run a blocking iterator in a worker thread and consume it from asyncio.

The worker runs at most ``lookahead`` items ahead of the consumer, so memory stays bounded
however long the input. Closing the async iterator (or cancelling the task awaiting it) tells
the worker to stop: it finishes the item in progress, at most, and exits.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class _Item(Generic[T]):
    value: T


@dataclass(frozen=True)
class _Failure:
    error: BaseException


_DONE = object()


async def iterate_in_thread(
    produce: Callable[[], Iterator[T]], lookahead: int = 2, name: str = "airvoice-worker"
) -> AsyncIterator[T]:
    """Yield the items of ``produce()``, computed in a daemon thread, as they come."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    slots = threading.Semaphore(max(1, lookahead))
    stop = threading.Event()

    def deliver(message: object) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, message)
        except RuntimeError:  # the event loop is closed: nobody is listening any more
            stop.set()

    def work() -> None:
        items: Iterator[T] | None = None
        try:
            items = produce()
            while not stop.is_set():
                while not slots.acquire(timeout=_POLL_SECONDS):
                    if stop.is_set() or loop.is_closed():
                        return
                if stop.is_set():
                    return
                try:
                    value = next(items)
                except StopIteration:
                    break
                if not stop.is_set():
                    deliver(_Item(value))
        except BaseException as exc:
            deliver(_Failure(exc))
            return
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()
        deliver(_DONE)

    thread = threading.Thread(target=work, name=name, daemon=True)
    thread.start()
    try:
        while True:
            message = await queue.get()
            if message is _DONE:
                return
            if isinstance(message, _Failure):
                raise message.error
            slots.release()
            yield message.value
    finally:
        stop.set()
