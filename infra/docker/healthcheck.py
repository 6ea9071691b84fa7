"""The image's HEALTHCHECK: is ``airvoice serve`` up and answering ``/health``?

Healthy when ``/health`` says ``ok``, or when it answers 503 only because every session slot is
taken (a busy server is alive). Unhealthy while the models load (covered by the start period),
when shutting down, or when nothing listens. Standard library only; TLS when the server has it.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("AIRVOICE_PORT", "8000")
    tls = bool(os.environ.get("AIRVOICE_SSL_CERTFILE"))
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/health"
    context = ssl._create_unverified_context() if tls else None  # our own cert, on loopback
    try:
        with urllib.request.urlopen(url, timeout=4, context=context) as response:
            return 0 if json.load(response).get("status") == "ok" else 1
    except urllib.error.HTTPError as exc:
        try:
            body = json.load(exc)
        except ValueError:
            return 1
        return 0 if "slot" in str(body.get("reason", "")) else 1
    except OSError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
