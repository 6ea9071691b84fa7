"""Cutting text into sentences and phonemes into model-sized pieces."""

from __future__ import annotations

from airvoice.engines.kokoro.segment import MAX_TEXT_CHARS, chunk_phonemes, split_sentences
from airvoice.engines.kokoro.vocab import KOKORO_VOCAB, MAX_PHONEMES, encode, normalize


def test_sentences_split_at_ends_not_at_abbreviations_or_decimals():
    text = "Dr. Smith paid $3.50 at 5 p.m. today! Did J. R. R. Tolkien write it? Yes… Great.\nOk"
    assert list(split_sentences(text)) == [
        "Dr. Smith paid $3.50 at 5 p.m. today!",
        "Did J. R. R. Tolkien write it?",
        "Yes…",
        "Great.",
        "Ok",
    ]


def test_a_run_on_text_is_cut_before_g2p():
    pieces = list(split_sentences("word " * 1000))
    assert all(len(p) <= MAX_TEXT_CHARS for p in pieces)
    assert sum(len(p.split()) for p in pieces) == 1000


def test_phonemes_are_cut_to_the_context_at_clauses_then_spaces():
    clause = "ðə kwˈɪk bɹˈWn fˈɑks ʤˈʌmps ˌOvəɹ ðə lˈAzi dˈɔɡ,"
    sentence = " ".join([clause] * 30) + " ænd ðˈɛn sˈʌm" + " wˈʌn" * 200
    pieces = chunk_phonemes(sentence)
    assert all(len(p) <= MAX_PHONEMES for p in pieces)
    assert " ".join(pieces) == sentence
    assert all(p.endswith(",") for p in pieces[:1])  # clause ends are preferred
    assert chunk_phonemes("a" * 1200) == ["a" * 510, "a" * 510, "a" * 180]


def test_first_piece_takes_the_clauses_that_fit():
    sentence = "wˈʌn, tˈu, θɹˈi, fˈɔɹ, fˈIv sˈɪks sˈɛvən ˈAt nˈIn tˈɛn"
    assert chunk_phonemes(sentence, first_piece=10) == ["wˈʌn, tˈu,", sentence[11:]]
    assert chunk_phonemes(sentence, first_piece=4) == ["wˈʌn,", sentence[6:]]
    assert chunk_phonemes(sentence, first_piece=200) == [sentence]
    assert chunk_phonemes("   ") == []


def test_vocab_drops_unknown_symbols():
    assert normalize("hə❓lˈO  wˈɜɹld") == "həlˈO wˈɜɹld"
    assert encode("ab") == [KOKORO_VOCAB["a"], KOKORO_VOCAB["b"]]
    assert len(KOKORO_VOCAB) == 114
