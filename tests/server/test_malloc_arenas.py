"""The server caps glibc's malloc arenas, so threads cannot each fragment an arena of their own
(the creeping RSS of long soaks, issue 15 item 2)."""

from __future__ import annotations

import subprocess
import sys

THREADS_ALLOCATE = """
import sys, threading
import numpy as np
from airvoice.server.memory import malloc_arenas
if sys.argv[1] == "server":
    from airvoice.server.app import create_app
    from airvoice.testing.server import offline_server_config
    create_app(offline_server_config())
def work():
    for _ in range(200):
        kept = [np.ones(1000) for _ in range(50)]
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(malloc_arenas())
"""


def _arenas(kind: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", THREADS_ALLOCATE, kind],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return int(done.stdout.strip().splitlines()[-1])


def test_threads_of_a_server_process_share_two_malloc_arenas():
    assert _arenas("plain") > 2  # glibc's default: an arena per contending thread
    assert _arenas("server") <= 2
