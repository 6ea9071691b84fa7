"""One worker thread that runs every conversation's decoding steps in turn (round-robin).

Each job advances by one step at a time (a prefill, or one decoded token), so one long reply
never holds another conversation's first token back by more than a step or two, and a cancelled
job stops within one step.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from typing import Protocol

log = logging.getLogger(__name__)


class Job(Protocol):
    """Work that advances one step at a time."""

    cancelled: bool

    def step(self) -> bool:
        """Do one step; True when the job is finished."""

    def finish(self, error: BaseException | None) -> None:
        """Called once, on the worker thread, when the job ends (done, cancelled or failed)."""


class RoundRobinScheduler:
    """Runs jobs on one daemon thread, one step of each job in turn."""

    def __init__(self, name: str = "airvoice-decode") -> None:
        self._jobs: deque[Job] = deque()
        self._cv = threading.Condition()
        self._closed = False
        self.steps = 0
        """Steps run so far, by every job: a clock for fairness."""
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._cv:
            if self._closed:
                raise RuntimeError("the engine is closed; load a new one")
            self._jobs.append(job)
            self._cv.notify()

    @property
    def pending(self) -> int:
        """Jobs waiting or running."""
        with self._cv:
            return len(self._jobs)

    def close(self, timeout: float = 5.0) -> None:
        """Cancel every job and stop the thread."""
        with self._cv:
            self._closed = True
            for job in self._jobs:
                job.cancelled = True
            self._cv.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._jobs and not self._closed:
                    self._cv.wait()
                if not self._jobs:
                    return
                job = self._jobs.popleft()
            if job.cancelled:
                self._end(job, None)
                continue
            try:
                self.steps += 1
                done = job.step()
            except Exception as exc:  # a failing job must not take the worker down
                log.exception("a decoding job failed")
                self._end(job, exc)
                continue
            if done or job.cancelled:
                self._end(job, None)
            else:
                with self._cv:
                    self._jobs.append(job)

    @staticmethod
    def _end(job: Job, error: BaseException | None) -> None:
        try:
            job.finish(error)
        except Exception:
            log.exception("finishing a decoding job failed")
