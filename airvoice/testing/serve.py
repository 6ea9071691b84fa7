"""An offline airvoice server in a process of its own (soak benchmark, memory measurements).

``python -m airvoice.testing.serve --port P --root DIR [--set FIELD=VALUE ...]`` builds the
tiny Ultravox and the real int8 Kokoro under ``DIR`` (reused when there) and serves them with
the test token on 127.0.0.1 until SIGTERM; ``--set engine=vllm`` serves the tiny Ultravox on
vLLM (CPU build), sized by the ``max_model_len`` and ``kv_cache_gib`` given.
``offline_server_process`` starts one and yields its port.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airvoice.testing.server import offline_server_config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def offline_server_process(
    root: Path, log_file: Path, max_new_tokens: int = 10, **settings: Any
) -> Iterator[tuple[int, int]]:
    """Start ``python -m airvoice.testing.serve``; yields ``(port, pid)``; SIGTERM at the end."""
    port = free_port()
    args = [sys.executable, "-m", "airvoice.testing.serve", "--port", str(port)]
    args += ["--root", str(root), "--max-new-tokens", str(max_new_tokens)]
    for key, value in settings.items():
        args += ["--set", f"{key}={value}"]
    with open(log_file, "ab") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited with {process.returncode}; see {log_file}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the offline server did not start within 180 s")
            time.sleep(0.1)
        yield port, process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--max-new-tokens", type=int, default=10)
    parser.add_argument("--set", action="append", default=[], help="a ServerConfig field=value")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from airvoice.server.app import create_app
    from airvoice.server.logs import configure_logging
    from airvoice.server.run import AirvoiceServer, uvicorn_config
    from airvoice.testing.server import build_offline_engines

    overrides = dict(item.split("=", 1) for item in args.set)
    overrides.setdefault("log_level", "info")
    config = offline_server_config(port=args.port, **overrides)
    configure_logging(config.log_level, config.token.get_secret_value())
    logging.getLogger(__name__).info("building the offline engines")
    if config.engine == "vllm":
        sizing = {"max_model_len": config.max_model_len, "kv_cache_gib": config.kv_cache_gib}
        engines = build_offline_engines(args.root, args.max_new_tokens, "vllm", **sizing)
    else:
        engines = build_offline_engines(args.root, max_new_tokens=args.max_new_tokens)
    server = AirvoiceServer(uvicorn_config(create_app(config, engines), config))
    server.run()


if __name__ == "__main__":
    main()
