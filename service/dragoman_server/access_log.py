"""The record of one call: its request id, peer, timing and outcome; when the call ends it is
counted in the metrics and written as one access-log line (text or JSON, see `logs.py`)."""

import logging
import time

import grpc

from .auth import key_label
from .logs import ACCESS_LOG, request_id_var
from .request_ids import request_id_of

access_log = logging.getLogger(ACCESS_LOG)


class CallRecord:
    """Bookkeeping of one call, from the moment the interceptor sees it to its status."""

    __slots__ = (
        "method",
        "context",
        "metrics",
        "request_id",
        "key",
        "code",
        "reason",
        "started",
        "token",
        "peer",
        "deadline",
        "ended",
    )

    def __init__(
        self,
        method: str,
        context=None,
        metrics=None,
        *,
        metadata=None,
        peer: str | None = None,
        time_remaining: float | None = None,
    ):
        """`context`: a grpc call's (its metadata, peer and deadline are read from it); without
        one (the HTTP face), `metadata` (lower-case name, value pairs), `peer` and
        `time_remaining` (seconds, None: no deadline) are given directly."""
        self.method = method
        self.context = context
        self.metrics = metrics
        if context is not None:
            metadata = context.invocation_metadata()
            # Read now: once a streaming call is over (its generator closed late by the garbage
            # collector), the context's C call is gone and reading it can crash the process.
            peer = context.peer()
            time_remaining = context.time_remaining()
        self.request_id = request_id_of(metadata)
        self.key: bytes | None = None
        self.code = "UNKNOWN"
        self.reason: str | None = None
        self.started = time.perf_counter()
        self.peer = peer
        self.deadline = None if time_remaining is None else self.started + time_remaining
        self.token = request_id_var.set(self.request_id)
        self.ended = False
        if metrics:
            metrics.in_flight.inc()

    def failed(self, status: str, reason: str | None) -> None:
        self.code, self.reason = status, reason

    def cancelled(self) -> None:
        remaining = None if self.deadline is None else self.deadline - time.perf_counter()
        self.code = (
            "DEADLINE_EXCEEDED" if remaining is not None and remaining < 0.05 else "CANCELLED"
        )

    def aborted(self) -> None:
        """The handler called `context.abort` itself: take the code it set."""
        if self.context is None:
            return
        try:
            code = self.context.code()
        except Exception:
            code = None
        if isinstance(code, grpc.StatusCode):
            self.code = code.name
        elif self.code == "UNKNOWN":
            self.code = "ABORTED"

    def end(self) -> None:
        """Count, time and log the call, once."""
        if self.ended:
            return
        self.ended = True
        seconds = time.perf_counter() - self.started
        if self.metrics:
            self.metrics.in_flight.dec()
            self.metrics.observe_call(self.method, self.code, seconds, self.reason)
        access_log.info(
            "%s %s %.1fms",
            self.method,
            self.code,
            seconds * 1000,
            extra={
                "request_id": self.request_id,
                "method": self.method,
                "status": self.code,
                "reason": self.reason,
                "duration_ms": round(seconds * 1000, 1),
                "peer": self.peer,
                "key": key_label(self.key),
            },
        )

    def release(self) -> None:
        """Forget the request id (after the status and its trailers went out)."""
        try:
            request_id_var.reset(self.token)
        except ValueError:  # ended in another context
            pass
