"""The session dispatcher: one public URL in front of several airvoice replicas.

``POST /connect`` (Pipecat's client convention) answers with the WebSocket URL of the replica
chosen for the session and a short-lived signed token for it. See :mod:`airvoice.dispatch.app`.
"""
