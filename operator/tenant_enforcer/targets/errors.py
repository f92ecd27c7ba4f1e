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


# AWS error codes (botocore ClientError `Error.Code`) by what they mean for us.
_AWS_GONE = {
    "InvalidInstanceID.NotFound",
    "InvalidGroup.NotFound",
    "NoSuchBucket",
    "LoadBalancerNotFound",
    "ListenerNotFound",
    "InvalidNetworkInterfaceID.NotFound",
    "NoSuchBucketPolicy",
    "NoSuchPublicAccessBlockConfiguration",
    "ValidationError.NotFound",
}
_AWS_CONFLICT = {
    "IncorrectInstanceState",
    "ResourceInUse",
    "ScalingActivityInProgress",
    "DependencyViolation",
    "InvalidGroup.Duplicate",
    "OperationAborted",
    "ResourceContention",
}
_AWS_TRANSIENT = {
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ServiceUnavailable",
    "InternalError",
    "InternalFailure",
    "SlowDown",
    "RequestTimeout",
}


def aws_code(exc: BaseException) -> str | None:
    """The error code of a botocore ClientError (duck-typed: no botocore import here)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = (response.get("Error") or {}).get("Code")
        return str(code) if code else None
    return None


def classify_aws(exc: BaseException) -> ErrorClass:
    code = aws_code(exc)
    if code is None:
        return (
            ErrorClass.TRANSIENT
            if isinstance(exc, (ConnectionError, TimeoutError, OSError))
            else ErrorClass.FATAL
        )
    if code in _AWS_GONE:
        return ErrorClass.GONE
    if code in _AWS_CONFLICT:
        return ErrorClass.CONFLICT
    if code in _AWS_TRANSIENT:
        return ErrorClass.TRANSIENT
    return ErrorClass.FATAL  # AccessDenied, UnauthorizedOperation, validation errors …


class AwsTargetError(TargetError):
    """A failed AWS call, naming the call and the AWS error code (shown in Stalled/Events)."""

    def __init__(self, what: str, cause: BaseException) -> None:
        Exception.__init__(self, f"{what}: {aws_code(cause) or type(cause).__name__}")
        self.error_class = classify_aws(cause)
        self.code = aws_code(cause)
