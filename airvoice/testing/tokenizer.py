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
]

AUDIO_TOKEN = "<|audio|>"
"""Added after the base vocabulary as an additional special token, as fixie-ai/ultravox
``ultravox/model/ultravox_tokenizer.py`` (``from_pretrained_text_tokenizer``) does before the
tokenizer is saved to an Ultravox repo; the config's ``audio_token_index`` is its id."""

# Our own rendering of Meta's public Llama 3.1/3.2 Instruct prompt format (text turns, no tools):
# the system header always comes first with the "Cutting Knowledge Date" and "Today Date" lines
# (date_string if given, else today's date), then each message as
# <|start_header_id|>role<|end_header_id|>\n\n{content | trim}<|eot_id|>.
LLAMA31_CHAT_TEMPLATE = """{{- bos_token }}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] | trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' }}
    {{- message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
"""

_CORPUS = [
    "Hello! How can I help you today? I am a friendly voice assistant.",
    "The weather is sunny with a high of 21 degrees and a light breeze from the west.",
    "Sure, here is a short answer: the meeting starts at ten thirty in the morning.",
    "You are a friendly voice assistant. Answer briefly and naturally, in plain spoken "
    "sentences without lists, markdown or emoji, because your words will be read aloud.",
    "What time is it in Tokyo? It is a quarter past nine in the evening there.",
    "Numbers like 1, 2, 3, 42 and 2026 appear in speech; so do questions, commas and dots.",
]


def build_llama3_tokenizer(directory: Path, vocab_size: int = 512) -> tuple[int, int]:
    """Train and save a byte-level BPE tokenizer with the Llama-3 specials and ``<|audio|>``.

    Returns the base vocabulary size (the language model's ``vocab_size``) and the id of
    ``<|audio|>``, which lies just past it, as in the real Ultravox repos.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

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
    base_size = tokenizer.get_vocab_size()
    tokenizer.add_special_tokens([AddedToken(AUDIO_TOKEN, special=True, normalized=False)])
    audio_id = tokenizer.token_to_id(AUDIO_TOKEN)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(directory / "tokenizer.json"))
    # tokenizer_config.json as transformers 4.x's save_pretrained writes it in the hub repos:
    # the chat template inline, every special token in added_tokens_decoder.
    added = {
        str(tokenizer.token_to_id(token)): {
            "content": token,
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        }
        for token in [*LLAMA3_SPECIAL_TOKENS, AUDIO_TOKEN]
    }
    config = {
        "added_tokens_decoder": added,
        "additional_special_tokens": [AUDIO_TOKEN],
        "bos_token": "<|begin_of_text|>",
        "chat_template": LLAMA31_CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": True,
        "eos_token": "<|eot_id|>",
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": 131072,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    special = {
        "additional_special_tokens": [AUDIO_TOKEN],
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|eot_id|>",
    }
    (directory / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    return base_size, audio_id
