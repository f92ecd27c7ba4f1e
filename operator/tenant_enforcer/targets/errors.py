"""Classify client errors once, at the adapter boundary (never by matching message text)."""

from __future__ import annotations

from enum import Enum


class ErrorClass(Enum):
    GONE = "Gone"  # the object no longer exists: nothing left to do
    CONFLICT = "Conflict"  # someone changed it meanwhile: re-read and decide again
    TRANSIENT = "Transient"  # throttling, timeouts, 5xx: retry with backoff
    FATAL = "Fatal"  # permissions, invalid requests: retrying will not help


_BY_STATUS = {404: ErrorClass.GONE, 410: ErrorClass.GONE, 409: ErrorClass.CONFLICT, 429: ErrorClass.TRANSIENT}


def classify(exc: BaseException) -> ErrorClass:
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        if status in _BY_STATUS:
            return _BY_STATUS[status]
        return ErrorClass.TRANSIENT if status >= 500 or status == 0 else ErrorClass.FATAL
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return ErrorClass.TRANSIENT
    return ErrorClass.FATAL


class TargetError(Exception):
    """An action on one object failed; carries its class for the controller to act on."""

    def __init__(self, what: str, cause: BaseException) -> None:
        self.error_class = classify(cause)
        status = getattr(cause, "status", None)
        reason = getattr(cause, "reason", None) or type(cause).__name__
        super().__init__(f"{what}: {reason}" + (f" (HTTP {status})" if status else ""))
