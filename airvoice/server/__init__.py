"""The voice server: FastAPI app (``/ws``, ``/health``, ``/metrics``, ``/``), auth, session slots.

See :func:`airvoice.server.app.create_app` and :mod:`airvoice.server.run`.
"""
