"""The one exception type the Dragoman client raises."""

from __future__ import annotations

from typing import Any

import grpc

__all__ = ["DragomanError"]


class DragomanError(Exception):
    """An error from a Dragoman call.

    Every failed RPC is raised as a ``DragomanError`` (never as a raw ``grpc.RpcError``), and so is
    a request the client can tell is invalid before sending it (``code`` is then
    ``grpc.StatusCode.INVALID_ARGUMENT``). Arguments of the wrong Python type raise ``TypeError``.

    Attributes:
        code: the ``grpc.StatusCode``.
        message: the server's status message (gRPC "details" string), e.g. ``"texts[3] is empty"``.
        details: the rich error details the server attached (``google.rpc.Status.details``), as a
            tuple of ``google.protobuf.any_pb2.Any``; empty when there are none. Unpack them with
            ``googleapis-common-protos`` (e.g. ``google.rpc.error_details_pb2.BadRequest``).
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
    ) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.details = tuple(details)
        self.debug_error_string = debug_error_string
        self.retry_after_s = retry_after_s

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}" if self.message else self.code.name

    def __repr__(self) -> str:
        return f"DragomanError({self.code}, {self.message!r})"

    def __reduce__(self):
        return (
            type(self),
            (self.code, self.message, self.details, self.debug_error_string, self.retry_after_s),
        )
