"""A process's resident memory, threads and file descriptors, read from Linux ``/proc``."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class ProcessSample:
    rss_mb: float
    threads: int
    fds: int
    thread_names: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data.pop("thread_names")
        return data


def sample(pid: int | None = None, names: bool = False) -> ProcessSample:
    """RSS (MB), thread count and open file descriptors of ``pid`` (this process by default)."""
    base = f"/proc/{pid or os.getpid()}"
    rss_kb, threads = 0, 0
    with open(f"{base}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                rss_kb = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    fds = len(os.listdir(f"{base}/fd"))
    thread_names: tuple[str, ...] = ()
    if names:
        found = []
        for tid in os.listdir(f"{base}/task"):
            try:
                with open(f"{base}/task/{tid}/comm", encoding="utf-8") as comm:
                    found.append(comm.read().strip())
            except OSError:  # the thread ended meanwhile
                pass
        thread_names = tuple(sorted(found))
    return ProcessSample(round(rss_kb / 1024, 1), threads, fds, thread_names)
