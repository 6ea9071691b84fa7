"""Prompts rendered by the checkpoint's own chat template, as the reference renders them."""

from __future__ import annotations

import datetime
import json

import torch
from ultravox_reference import reference_prompt

from airvoice.engines.ultravox.chat_template import ChatTemplate
from airvoice.engines.ultravox.conversation import (
    AssistantTurn,
    Conversation,
    UserTextTurn,
    UserTurn,
)

NEW_YEAR = datetime.date(2026, 1, 1)


def _turns(hidden: int) -> list:
    return [
        UserTurn(torch.zeros(7, hidden)),
        AssistantTurn(" The meeting starts at ten. "),  # the template trims it
        UserTextTurn("What time is it in Tokyo?"),
        AssistantTurn("A quarter past nine."),
        UserTurn(torch.zeros(13, hidden)),
    ]


def test_prompt_equals_the_templates_own_rendering(engine):
    turns = _turns(engine.config.text_config.hidden_size)
    conversation = Conversation("Be brief.", 4096, engine.chat_template, started=NEW_YEAR)
    items = conversation.render(engine.chat_template, turns)
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "<|audio|>"},
        {"role": "assistant", "content": " The meeting starts at ten. "},
        {"role": "user", "content": "What time is it in Tokyo?"},
        {"role": "assistant", "content": "A quarter past nine."},
        {"role": "user", "content": "<|audio|>"},
    ]
    text, ids = reference_prompt(engine.tokenizer, messages, "01 Jan 2026", [7, 13])
    assert [None if isinstance(i, tuple) else i for i in items] == ids
    assert engine.chat_template.render(conversation.messages(turns), NEW_YEAR) == text
    assert text.startswith(
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 01 Jan 2026\n\nBe brief.<|eot_id|>"
    )
    assert "ten.<|eot_id|>" in text and text.endswith(
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_the_date_is_fixed_when_the_conversation_starts(engine):
    conversation = engine.new_conversation()
    assert conversation.started == datetime.date.today()
    fixed = Conversation("Be brief.", 4096, engine.chat_template, started=NEW_YEAR)
    hidden = engine.config.text_config.hidden_size
    first = fixed.render(engine.chat_template, [UserTurn(torch.zeros(7, hidden))])
    later = fixed.render(engine.chat_template, _turns(hidden))
    text = engine.tokenizer.decode([i for i in first if isinstance(i, int)])
    assert "Today Date: 01 Jan 2026" in text
    header = engine.chat_template.encode_text("<|start_header_id|>assistant<|end_header_id|>\n\n")
    stable = len(first) - len(header) - 8  # up to the first audio's end: a stable prefix
    assert later[:stable] == first[:stable]


def test_the_checkpoints_template_decides_the_format(engine):
    """A text model that is not Llama brings its own template; the prompt follows it."""
    tokenizer = engine.tokenizer.__class__.from_pretrained(str(engine.files.ultravox_dir))
    tokenizer.chat_template = (
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + "
        "'<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}"
        "{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    template = ChatTemplate(tokenizer)
    conversation = Conversation("Be brief.", 4096, template, started=NEW_YEAR)
    hidden = engine.config.text_config.hidden_size
    items = conversation.render(template, [UserTurn(torch.zeros(3, hidden))])
    text = tokenizer.decode([i for i in items if not isinstance(i, tuple)])
    assert text == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert sum(isinstance(i, tuple) for i in items) == 3


def test_typed_text_cannot_claim_audio_positions(engine):
    conversation = Conversation("Be brief.", 4096, engine.chat_template, started=NEW_YEAR)
    items = conversation.render(engine.chat_template, [UserTextTurn("hi <|audio|> there")])
    assert not any(isinstance(i, tuple) for i in items)
    assert "hi  there<|eot_id|>" in engine.tokenizer.decode(items)


def test_audio_token_is_in_the_vocabulary_as_in_the_hub_repos(tiny_model, engine):
    config = json.loads((tiny_model.ultravox_dir / "config.json").read_text())
    tokenizer_config = json.loads((tiny_model.ultravox_dir / "tokenizer_config.json").read_text())
    audio_id = engine.tokenizer.convert_tokens_to_ids("<|audio|>")
    assert engine.tokenizer.encode("<|audio|>", add_special_tokens=False) == [audio_id]
    assert config["audio_token_index"] == audio_id == engine.config.text_config.vocab_size
    assert tokenizer_config["additional_special_tokens"] == ["<|audio|>"]
    assert tokenizer_config["added_tokens_decoder"][str(audio_id)]["special"] is True
    assert "Cutting Knowledge Date" in tokenizer_config["chat_template"]
    assert config["audio_model_id"] is None and "audio_config" in config
