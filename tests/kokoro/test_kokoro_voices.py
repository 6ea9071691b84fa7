"""Voice packs (.pt, .npz, raw .bin), names, blends, and the style row per length."""

from __future__ import annotations

import numpy as np
import pytest

from airvoice.engines.kokoro import UnknownVoiceError, VoiceLibrary
from airvoice.engines.kokoro.voices import parse_blend, style_for


def test_npz_bank_lists_its_voices(ja_voices):
    library = VoiceLibrary.load(ja_voices)
    assert library.names == ["jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo"]
    assert library.get("jf_alpha").shape == (510, 256)


def test_pt_packs_and_raw_bin_are_named_by_file(tiny_dir, tmp_path):
    raw = np.random.default_rng(1).normal(size=(510, 1, 256)).astype("<f4")
    raw.tofile(tmp_path / "xf_raw.bin")
    library = VoiceLibrary.load([tiny_dir / "voices", tmp_path / "xf_raw.bin"])
    assert library.names == ["af_tiny", "am_tiny", "xf_raw"]
    np.testing.assert_array_equal(library.get("xf_raw"), raw.reshape(510, 256))


def test_blend_is_the_normalised_weighted_sum(ja_voices):
    library = VoiceLibrary.load(ja_voices)
    a, b = library.get("jf_alpha"), library.get("jm_kumo")
    np.testing.assert_allclose(library.get("jf_alpha:0.7,jm_kumo:0.3"), 0.7 * a + 0.3 * b, 1e-6)
    np.testing.assert_allclose(library.get("jf_alpha:7, jm_kumo:3"), 0.7 * a + 0.3 * b, 1e-6)
    np.testing.assert_allclose(library.get("jf_alpha,jm_kumo"), (a + b) / 2, 1e-6)
    assert "jf_alpha:0.5,jm_kumo:0.5" in library and "nobody" not in library


def test_parse_blend():
    assert parse_blend("af_heart:0.7,af_bella:0.3") == [("af_heart", 0.7), ("af_bella", 0.3)]
    assert parse_blend("af_heart") == [("af_heart", 1.0)]
    with pytest.raises(UnknownVoiceError):
        parse_blend("af_heart:0")


def test_damaged_pack_is_refused():
    with pytest.raises(Exception, match="download it again"):
        VoiceLibrary({"broken": np.zeros(100, dtype=np.float32)})


def test_style_row_follows_the_input_length():
    pack = np.arange(510 * 256, dtype=np.float32).reshape(510, 256)
    assert style_for(pack, 1)[0, 0] == 0
    assert style_for(pack, 42)[0, 0] == 41 * 256
    assert style_for(pack, 510).shape == (1, 256)
    assert style_for(pack, 9999)[0, 0] == 509 * 256
