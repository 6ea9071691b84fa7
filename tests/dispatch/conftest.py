"""A replica in a process of its own, started as soon as the first dispatcher test runs, so
that its start-up (importing the server) overlaps the other tests; the last test kills it."""

from __future__ import annotations

import pytest

from airvoice.testing.replicas import start_replica_process


@pytest.fixture(scope="session")
def doomed_replica():
    process, url = start_replica_process("doomed", 2)
    yield process, url
    process.kill()
    process.wait(10)
    assert process.stderr is not None
    process.stderr.close()


@pytest.fixture(autouse=True)
def _start_the_doomed_replica_early(request):
    if request.node.path.name == "test_dispatcher.py":
        request.getfixturevalue("doomed_replica")
