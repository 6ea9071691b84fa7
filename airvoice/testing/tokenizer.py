"""An offline Llama-3-style tokenizer (byte-level BPE with the Llama-3 special tokens)."""

from __future__ import annotations

import json
from pathlib import Path

LLAMA3_SPECIAL_TOKENS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
    "<|eom_id|>",
    "<|finetune_right_pad_id|>",
    "<|audio|>",
]

# The Llama-3 chat template, without the date lines of 3.1's.
LLAMA3_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] "
    "+ '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}"
)

_CORPUS = [
    "Hello! How can I help you today? I am a friendly voice assistant.",
    "The weather is sunny with a high of 21 degrees and a light breeze from the west.",
    "Sure, here is a short answer: the meeting starts at ten thirty in the morning.",
    "You are a friendly voice assistant. Answer briefly and naturally, in plain spoken "
    "sentences without lists, markdown or emoji, because your words will be read aloud.",
    "What time is it in Tokyo? It is a quarter past nine in the evening there.",
    "Numbers like 1, 2, 3, 42 and 2026 appear in speech; so do questions, commas and dots.",
]


def build_llama3_tokenizer(directory: Path, vocab_size: int = 512) -> int:
    """Train and save a byte-level BPE tokenizer with the Llama-3 specials; returns its size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=LLAMA3_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS * 4, trainer)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(directory / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|eot_id|>",
        "clean_up_tokenization_spaces": False,
        "model_max_length": 131072,
        "chat_template": LLAMA3_CHAT_TEMPLATE,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    special = {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}
    (directory / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    return tokenizer.get_vocab_size()
