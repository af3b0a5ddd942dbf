"""Domain errors. Each maps to one gRPC status code (in `status.py`); nothing here imports grpc.

Every error carries a stable machine-readable `reason` (AIP-193's `google.rpc.ErrorInfo.reason`,
UPPER_SNAKE_CASE, domain `dragoman.v1`), a human message naming the field, and optionally the
field violations (`google.rpc.BadRequest`), a retry delay (`google.rpc.RetryInfo`) and quota
violations (`google.rpc.QuotaFailure`). Reasons are part of the public contract: the README's
error table lists them, and they never change meaning once released.
"""

from __future__ import annotations

from dataclasses import dataclass

ERROR_DOMAIN = "dragoman.v1"


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: `field` is a path such as `texts[3]` or `glossary[0].source`."""

    field: str
    description: str


@dataclass(frozen=True)
class QuotaViolation:
    """One exceeded quota: `subject` (e.g. `key:1a2b3c4d`) and what was exceeded."""

    subject: str
    description: str


class DragomanServerError(Exception):
    """Base class: a request failed for a reason the caller should see."""

    status = "INTERNAL"
    default_reason = "INTERNAL"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        field: str | None = None,
        violations: tuple[FieldViolation, ...] = (),
        retry_after_s: float | None = None,
        quota_violations: tuple[QuotaViolation, ...] = (),
        metadata: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        if field is not None and not violations:
            violations = (FieldViolation(field, message),)
        self.violations = tuple(violations)
        self.retry_after_s = retry_after_s
        self.quota_violations = tuple(quota_violations)
        # ErrorInfo.metadata: small, stable facts (e.g. {"limit": "4096", "model": "x"}).
        self.metadata = dict(metadata or {})


class InvalidArgument(DragomanServerError):
    """The request is malformed: the message names the field (and `violations` list them)."""

    status = "INVALID_ARGUMENT"
    default_reason = "INVALID_ARGUMENT"


class FailedPrecondition(DragomanServerError):
    """The request is well formed but the system is in a state where it can never succeed as is
    (a model that failed to load; a call larger than the per-minute quota). Not retried."""

    status = "FAILED_PRECONDITION"
    default_reason = "FAILED_PRECONDITION"


class NotFound(DragomanServerError):
    """A named thing (a model) does not exist."""

    status = "NOT_FOUND"
    default_reason = "NOT_FOUND"


class ResourceExhausted(DragomanServerError):
    """A queue, limit or quota is full; the caller may retry later (`retry_after_s`)."""

    status = "RESOURCE_EXHAUSTED"
    default_reason = "RESOURCE_EXHAUSTED"


class Unavailable(DragomanServerError):
    """The service cannot serve this now but may soon (a model still loading, shutting down)."""

    status = "UNAVAILABLE"
    default_reason = "UNAVAILABLE"


class Unauthenticated(DragomanServerError):
    """No valid credentials."""

    status = "UNAUTHENTICATED"
    default_reason = "UNAUTHENTICATED"


class DeadlineExceeded(DragomanServerError):
    """The call's deadline passed before it finished (its work is cancelled)."""

    status = "DEADLINE_EXCEEDED"
    default_reason = "DEADLINE_EXCEEDED"


class Cancelled(DragomanServerError):
    """The caller went away (its work is cancelled)."""

    status = "CANCELLED"
    default_reason = "CANCELLED"


class Internal(DragomanServerError):
    """A failure inside the server that the caller cannot fix (a model call that failed)."""

    status = "INTERNAL"
    default_reason = "INTERNAL"


class ConfigError(Exception):
    """The configuration is invalid; the message is one line naming the setting, its source and
    what is allowed."""


class ModelLoadError(Exception):
    """A model could not be loaded; the message is one line naming the model and the fix."""
