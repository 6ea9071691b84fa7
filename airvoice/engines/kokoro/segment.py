"""Cutting a reply into the pieces Kokoro speaks one at a time.

Text is cut into sentences (lazily, so a long text costs nothing up front); each sentence's
phonemes are cut to the model's context of 510 phonemes at clause punctuation, then at spaces.
The first sentence, when long, gives up its first clause as a piece of its own so that the first
audio leaves early.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from airvoice.engines.kokoro.vocab import MAX_PHONEMES

# A sentence ends at . ! ? or … (with closing quotes or brackets), before whitespace, or at a
# line break.
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)|\n")
_ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "etc", "e.g", "i.e", "no", "fig",
    "mt", "approx", "dept", "inc", "ltd", "co", "gen", "lt", "col", "sgt", "u.s", "a.m", "p.m",
})  # fmt: skip
_CLAUSE_END = re.compile(r"(?<=[,;:—…])\s+")
#: Text pieces longer than this are cut before G2P, so one run-on line costs bounded work.
MAX_TEXT_CHARS = 400


def split_sentences(text: str) -> Iterator[str]:
    """Sentences of ``text`` in order, stripped, none empty; "Dr." and the like end none."""
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end()
        if match.group().rstrip("\"'”’)]") == "." and _ends_with_abbreviation(text[start:end]):
            continue
        yield from _bounded(text[start:end].strip())
        start = end
    yield from _bounded(text[start:].strip())


def _ends_with_abbreviation(sentence: str) -> bool:
    words = sentence.split()
    if not words:
        return False
    last = words[-1].rstrip(".").lower()
    # A single letter other than "I" or "a" is an initial: "J. R. R. Tolkien".
    return last in _ABBREVIATIONS or (len(last) == 1 and last.isalpha() and last not in "ia")


def _bounded(sentence: str) -> Iterator[str]:
    """``sentence`` in pieces of at most ``MAX_TEXT_CHARS``, cut at clauses, then at spaces."""
    if sentence:
        yield from _pack(_CLAUSE_END.split(sentence), MAX_TEXT_CHARS)


def chunk_phonemes(phonemes: str, first_piece: int | None = None) -> list[str]:
    """Cut one sentence's phonemes into pieces of at most ``MAX_PHONEMES`` symbols.

    With ``first_piece`` set and the sentence longer than that, its first clauses (as many as
    fit in ``first_piece``, at least one) become a piece of their own.
    """
    phonemes = phonemes.strip()
    if not phonemes:
        return []
    clauses = _CLAUSE_END.split(phonemes)
    if first_piece is not None and len(phonemes) > first_piece and len(clauses) > 1:
        taken, size = 1, len(clauses[0])
        while taken < len(clauses) and size + 1 + len(clauses[taken]) <= first_piece:
            size += 1 + len(clauses[taken])
            taken += 1
        if taken < len(clauses):
            return _pack(clauses[:taken], MAX_PHONEMES) + _pack(clauses[taken:], MAX_PHONEMES)
    return _pack(clauses, MAX_PHONEMES)


def _pack(parts: list[str], limit: int) -> list[str]:
    """Join consecutive ``parts`` with spaces into pieces of at most ``limit`` characters."""
    pieces: list[str] = []
    current = ""
    for part in parts:
        for word in _split_long(part, limit):
            if current and len(current) + 1 + len(word) > limit:
                pieces.append(current)
                current = word
            else:
                current = f"{current} {word}" if current else word
    if current:
        pieces.append(current)
    return pieces


def _split_long(part: str, limit: int) -> list[str]:
    """``part`` itself when it fits, else its words (and any word longer than ``limit`` cut)."""
    if len(part) <= limit:
        return [part]
    words: list[str] = []
    for word in part.split():
        words.extend(word[i : i + limit] for i in range(0, len(word), limit))
    return words
