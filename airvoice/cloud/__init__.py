"""RunPod: a small REST v2 client (httpx) and the deploy workflow built on it.

Light on import: no torch, no pipecat. See ``airvoice deploy``, ``airvoice pods`` and
``airvoice volumes`` for the command line.
"""
