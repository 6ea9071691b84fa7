"""Typed RunPod errors, built from RunPod's ``application/problem+json`` bodies.

Each message says what to do next. None of them ever contains the API key.
"""

from __future__ import annotations

from typing import Any

from airvoice.errors import AirvoiceError

_NO_CAPACITY_WORDS = (
    "capacity",
    "no longer any instances",
    "not available",
    "unavailable",
    "out of stock",
)


class RunPodError(AirvoiceError):
    """Base class of every error the RunPod client raises."""

    hint = ""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        title: str = "",
        detail: str = "",
        errors: list[str] | None = None,
        operation: str = "",
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.errors = list(errors or [])
        self.operation = operation
        text = message
        if self.errors:
            text += "\n" + "\n".join(f"  - {e}" for e in self.errors)
        if self.hint:
            text += f"\n{self.hint}"
        super().__init__(text)


class AuthenticationError(RunPodError):
    """401: the API key is missing, malformed, expired or invalid."""

    hint = (
        "Check your RunPod API key: pass --api-key, set RUNPOD_API_KEY, or write it to the "
        "[default] profile of ~/.runpod/config.toml (create one at "
        "https://www.runpod.io/console/user/settings)."
    )


class PaymentRequiredError(RunPodError):
    """402: the account balance is too low to start anything."""

    hint = "Add credit to your RunPod account (https://www.runpod.io/console/user/billing)."


class PermissionDeniedError(RunPodError):
    """403: the key is valid but may not do this (or may not use this pool)."""

    hint = "Use a key with read/write access to pods and network volumes, or another pool."


class NotFoundError(RunPodError):
    """404: no such pod, volume, GPU type or data center."""

    hint = "List what exists with `airvoice pods list` or `airvoice volumes list`."


class ConflictError(RunPodError):
    """409: the action is not valid for the resource's current status."""

    hint = "Check the pod's status with `airvoice pods status POD_ID`."


class BadRequestError(RunPodError):
    """400: the request breaks a rule, or the GPU/data-center combination has no capacity."""

    @property
    def no_capacity(self) -> bool:
        """Whether RunPod's detail reads as "no capacity" (it carries no machine code for it)."""
        text = f"{self.title} {self.detail}".lower()
        return any(word in text for word in _NO_CAPACITY_WORDS)


class RequestRejectedError(RunPodError):
    """422: RunPod's contract rejects the request (a bug in airvoice: please report it)."""

    hint = "This is a bug in airvoice's request; please report it with the errors above."


class RateLimitedError(RunPodError):
    """429 after the bounded retries (or a Retry-After longer than we agreed to wait)."""

    hint = "RunPod is rate limiting this key; wait a minute and try again."


class ServerError(RunPodError):
    """5xx after the bounded retries."""

    hint = "RunPod is having trouble; try again in a few minutes (https://status.runpod.io)."


class TransportError(RunPodError):
    """The API could not be reached (DNS, connection, timeout) after the bounded retries."""

    hint = "Check your network connection, then try again."


class UnreachableError(TransportError):
    """The request was never sent: RunPod could not be reached at all (DNS, connect)."""


class MissingApiKeyError(RunPodError):
    """No API key in --api-key, RUNPOD_API_KEY or ~/.runpod/config.toml."""

    hint = AuthenticationError.hint


_BY_STATUS: dict[int, type[RunPodError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: PaymentRequiredError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: RequestRejectedError,
    429: RateLimitedError,
}


def error_from_problem(status: int, problem: Any, operation: str) -> RunPodError:
    """The typed error for an HTTP error ``status`` and its problem+json body (if any)."""
    body = problem if isinstance(problem, dict) else {}
    title = str(body.get("title") or "")
    detail = str(body.get("detail") or "")
    errors = body.get("errors") if isinstance(body.get("errors"), list) else None
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else RunPodError)
    summary = detail or title or f"HTTP {status}"
    return cls(
        f"RunPod refused {operation} ({status}): {summary}",
        status=status,
        title=title,
        detail=detail,
        errors=[str(e) for e in errors] if errors else None,
        operation=operation,
    )
