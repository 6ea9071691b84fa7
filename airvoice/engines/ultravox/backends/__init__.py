"""The two Ultravox backends, side by side, on the shared conversation, template and audio code.

- ``base``: what both share (the public interface, input checks, one reply per conversation
  at a time, the reply stream); each backend fills in a few hooks.
- ``torch_engine``: our own model and decoding loop (the CPU engine, and the reference the
  other is checked against); ``torch_scheduler`` takes the conversations' steps in turn.
- ``vllm_engine``: one vLLM ``AsyncLLM`` per process serving every conversation in batches;
  ``vllm_model`` is vLLM's Ultravox with our input processor, registered by ``vllm_plugin``.
"""
