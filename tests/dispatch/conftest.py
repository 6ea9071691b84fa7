"""A replica in a process of its own, started as soon as the first dispatcher test runs, so
that its start-up (importing the server) overlaps the other tests; the last test kills it."""

from __future__ import annotations

import pytest

from airvoice.testing.replicas import SECRET, TOKEN, log_tail, start_replica_process


@pytest.fixture(scope="session")
def doomed_replica():
    process, url = start_replica_process("doomed", 2, log_level="info")
    yield process, url
    process.kill()
    process.wait(10)
    log = log_tail(process, chars=10**7)
    process.stderr.close()
    # Read its log as an attacker would: no deploy token, secret or session token in it.
    assert "WebSocket /ws" in log  # the access log is there...
    assert TOKEN not in log and SECRET not in log and "av1." not in log  # ...without secrets


@pytest.fixture(autouse=True)
def _start_the_doomed_replica_early(request):
    if request.node.path.name == "test_dispatcher.py":
        request.getfixturevalue("doomed_replica")
