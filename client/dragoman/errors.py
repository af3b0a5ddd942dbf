"""The one exception type the Dragoman client raises, and the parts of its error details."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc

__all__ = ["DragomanError", "FieldViolation", "QuotaViolation"]


@dataclass(frozen=True)
class FieldViolation:
    """One bad request field (``google.rpc.BadRequest.FieldViolation``): ``field`` is a path such
    as ``"texts[3]"`` (``""`` for the request as a whole) and ``description`` says what is wrong."""

    field: str
    description: str


@dataclass(frozen=True)
class QuotaViolation:
    """One exceeded quota (``google.rpc.QuotaFailure.Violation``), e.g. subject ``"key:1a2b3c4d"``."""

    subject: str
    description: str


class DragomanError(Exception):
    """An error from a Dragoman call.

    Every failed RPC is raised as a ``DragomanError`` (never as a raw ``grpc.RpcError``), and so is
    a request the client can tell is invalid before sending it (``code`` is then
    ``grpc.StatusCode.INVALID_ARGUMENT``). Arguments of the wrong Python type raise ``TypeError``.

    Attributes:
        code: the ``grpc.StatusCode``.
        message: the server's status message (gRPC "details" string), e.g. ``"texts[3] is empty"``.
        reason: the stable, machine-readable reason (``google.rpc.ErrorInfo.reason``), e.g.
            ``"TEXT_EMPTY"``, ``"QUOTA_EXCEEDED"``, ``"MODEL_LOADING"``; branch on this, not on the
            message. ``None`` when the server sent none (client-side checks, transport errors).
        domain: the ErrorInfo domain, ``"dragoman.v1"`` for the server's own errors.
        metadata: the ErrorInfo metadata, small facts such as ``{"limit": "128"}``.
        field_violations: the bad fields (``google.rpc.BadRequest``), a tuple of
            ``FieldViolation``; empty when there are none.
        quota_violations: the exceeded quotas (``google.rpc.QuotaFailure``), a tuple of
            ``QuotaViolation``.
        details: every rich error detail the server attached (``google.rpc.Status.details``), as a
            tuple of ``google.protobuf.any_pb2.Any``.
        debug_error_string: gRPC's transport-level description, for debugging; ``None`` for
            client-side errors.
        retry_after_s: how long the server asks the caller to wait before trying again (from its
            ``google.rpc.RetryInfo`` or ``retry-after`` metadata, e.g. on RESOURCE_EXHAUSTED);
            ``None`` when it did not say.

    ``str(error)`` is ``"CODE: message"``, e.g. ``"INVALID_ARGUMENT: texts[3] is empty"``.
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        details: tuple[Any, ...] = (),
        debug_error_string: str | None = None,
        retry_after_s: float | None = None,
        *,
        reason: str | None = None,
        domain: str | None = None,
        metadata: dict[str, str] | None = None,
        field_violations: tuple[FieldViolation, ...] = (),
        quota_violations: tuple[QuotaViolation, ...] = (),
    ) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.details = tuple(details)
        self.debug_error_string = debug_error_string
        self.retry_after_s = retry_after_s
        self.reason = reason
        self.domain = domain
        self.metadata = dict(metadata or {})
        self.field_violations = tuple(field_violations)
        self.quota_violations = tuple(quota_violations)

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}" if self.message else self.code.name

    def __repr__(self) -> str:
        if self.reason:
            return f"DragomanError({self.code}, {self.message!r}, reason={self.reason!r})"
        return f"DragomanError({self.code}, {self.message!r})"

    def __reduce__(self):
        return (
            _rebuild,
            (
                type(self),
                (self.code, self.message, self.details, self.debug_error_string),
                {
                    "retry_after_s": self.retry_after_s,
                    "reason": self.reason,
                    "domain": self.domain,
                    "metadata": self.metadata,
                    "field_violations": self.field_violations,
                    "quota_violations": self.quota_violations,
                },
            ),
        )


def _rebuild(cls, args, kwargs):
    return cls(*args, **kwargs)
