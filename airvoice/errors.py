"""Errors that airvoice raises on purpose. Each message says what to do next."""

from __future__ import annotations


class AirvoiceError(Exception):
    """Base class of every error airvoice raises on purpose."""


class ModelFilesMissingError(AirvoiceError, FileNotFoundError):
    """A model file the engine needs is not on disk."""

    def __init__(self, missing: list[str], repo: str | None = None) -> None:
        self.missing = list(missing)
        self.repo = repo
        where = f" of {repo}" if repo else ""
        listing = "\n".join(f"  - {m}" for m in self.missing)
        fetch = f"airvoice models prefetch --repo {repo}" if repo else "airvoice models prefetch"
        super().__init__(
            f"model files{where} are missing:\n{listing}\n"
            f"Fetch them with `{fetch}` (needs HF_TOKEN for gated repos), "
            "or point airvoice at a directory that holds them."
        )


class CheckpointMismatchError(AirvoiceError):
    """A checkpoint's tensors do not match the model it should load into."""


class AudioInputError(AirvoiceError, ValueError):
    """Audio that cannot be used as a user turn (empty, not finite, too long, wrong shape)."""


class ConversationBusyError(AirvoiceError, RuntimeError):
    """A conversation was asked for a second reply while one is still being generated."""
