"""Run a blocking iterator in a worker thread and consume it from asyncio.

The worker runs at most ``lookahead`` items ahead of the consumer, so memory stays bounded
however long the input. ``stop()`` (also called by ``aclose()``, by cancelling the task that
awaits the next item, and when the object is collected) tells the worker to stop at once: it
calls ``on_stop`` (which can abort the item in progress, e.g. an ONNX run) and the worker exits
without producing another item.
"""

from __future__ import annotations

import asyncio
import contextlib
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


class ThreadedIterator(AsyncIterator[T]):
    """The items of ``produce()``, computed in a daemon thread, as an async iterator."""

    def __init__(
        self,
        produce: Callable[[], Iterator[T]],
        lookahead: int = 2,
        name: str = "airvoice-worker",
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self._produce = produce
        self._lookahead = max(1, lookahead)
        self._name = name
        self._on_stop = on_stop
        self._queue: asyncio.Queue[Any] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots = threading.Semaphore(self._lookahead)
        self.stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._ended = False

    @property
    def thread(self) -> threading.Thread | None:
        """The worker thread, once the first item was asked for."""
        return self._thread

    def __aiter__(self) -> ThreadedIterator[T]:
        return self

    async def __anext__(self) -> T:
        if self._ended:
            raise StopAsyncIteration
        if self._thread is None:
            self._start(asyncio.get_running_loop())
        assert self._queue is not None
        try:
            message = await self._queue.get()
        except BaseException:  # cancelled: nobody will read what the worker makes
            self.stop()
            raise
        if message is _DONE:
            self._ended = True
            raise StopAsyncIteration
        if isinstance(message, _Failure):
            self._ended = True
            self.stop()
            raise message.error
        self._slots.release()
        return message.value

    def stop(self) -> None:
        """Stop the worker now (thread-safe, idempotent); the iterator then ends, and a
        consumer waiting for the next item gets the end at once."""
        self._ended = True
        if self.stopped.is_set():
            return
        self.stopped.set()
        if self._thread is None:
            return
        if self._on_stop is not None:
            with contextlib.suppress(Exception):
                self._on_stop()
        queue, loop = self._queue, self._loop
        if queue is not None and loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)

    async def aclose(self) -> None:
        self.stop()

    def __del__(self) -> None:
        self.stop()

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._queue, self._loop = asyncio.Queue(), loop
        queue, stop, slots = self._queue, self.stopped, self._slots
        produce = self._produce

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
                if not stop.is_set():  # an aborted item fails: that is not an error
                    deliver(_Failure(exc))
                return
            finally:
                close = getattr(items, "close", None)
                if close is not None:
                    with contextlib.suppress(Exception):
                        close()
            deliver(_DONE)

        self._thread = threading.Thread(target=work, name=self._name, daemon=True)
        self._thread.start()


def iterate_in_thread(
    produce: Callable[[], Iterator[T]],
    lookahead: int = 2,
    name: str = "airvoice-worker",
    on_stop: Callable[[], None] | None = None,
) -> ThreadedIterator[T]:
    """Yield the items of ``produce()``, computed in a daemon thread, as they come."""
    return ThreadedIterator(produce, lookahead, name, on_stop)
