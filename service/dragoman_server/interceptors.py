"""Server interceptors. `ErrorInterceptor` is the one place domain errors become gRPC statuses.

For every call of the Dragoman service it also: takes the request id from `x-request-id` metadata
(else makes one) and sends it back as initial metadata; checks the API key and charges its quota
(when an `Authenticator` is given; health and reflection stay open); counts the call in the
metrics; and writes one access-log line (method, status, duration, request id).
"""

import asyncio
import logging
import re
import time
import uuid

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from .auth import Authenticator, key_label, request_chars
from .errors import DragomanServerError
from .logs import ACCESS_LOG, request_id_var

log = logging.getLogger(__name__)
access_log = logging.getLogger(ACCESS_LOG)

SERVICE_PREFIX = "/dragoman.v1.Dragoman/"
REQUEST_ID = "x-request-id"
_SAFE_ID = re.compile(r"[^A-Za-z0-9._:/+=@-]")


async def _abort(context: grpc.aio.ServicerContext, exc: DragomanServerError) -> None:
    code = getattr(grpc.StatusCode, exc.status)
    if exc.retry_after_s is None:
        await context.abort(code, exc.message)
    seconds = int(exc.retry_after_s)
    retry = error_details_pb2.RetryInfo(
        retry_delay=duration_pb2.Duration(
            seconds=seconds, nanos=int((exc.retry_after_s - seconds) * 1e9)
        )
    )
    status = status_pb2.Status(code=getattr(code_pb2, exc.status), message=exc.message)
    status.details.add().Pack(retry)
    converted = rpc_status.to_status(status)
    request_id = request_id_var.get()
    metadata = (
        *(((REQUEST_ID, request_id),) if request_id else ()),
        *converted.trailing_metadata,
        ("retry-after", str(max(1, round(exc.retry_after_s)))),
    )
    await context.abort(converted.code, converted.details, metadata)


async def _internal(context: grpc.aio.ServicerContext, method: str, exc: Exception) -> None:
    log.error("%s failed: %s: %s", method, type(exc).__name__, exc, exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")


def request_id_of(metadata) -> str:
    """The caller's `x-request-id` (cleaned, at most 128 characters), else a new one."""
    for key, value in metadata or ():
        if key == REQUEST_ID:
            if isinstance(value, bytes):
                value = value.decode("utf-8", "replace")
            value = _SAFE_ID.sub("", value)[:128]
            if value:
                return value
    return uuid.uuid4().hex


class _Call:
    """Bookkeeping of one call: request id, key, status, timing, metrics and the access log."""

    __slots__ = (
        "owner",
        "method",
        "context",
        "request_id",
        "key",
        "code",
        "started",
        "token",
        "peer",
        "deadline",
        "ended",
    )

    def __init__(self, owner: "ErrorInterceptor", method: str, context):
        self.owner = owner
        self.method = method
        self.context = context
        self.request_id = request_id_of(context.invocation_metadata())
        self.key: bytes | None = None
        self.code = "UNKNOWN"
        self.started = time.perf_counter()
        # Read now: once a streaming call is over (its generator closed late by the garbage
        # collector), the context's C call is gone and reading it can crash the process.
        self.peer = context.peer()
        remaining = context.time_remaining()
        self.deadline = None if remaining is None else self.started + remaining
        self.token = request_id_var.set(self.request_id)
        self.ended = False
        if owner.metrics:
            owner.metrics.in_flight.inc()

    async def begin(self, request) -> None:
        # In trailers, not early headers: gRPC never retries a call once headers have arrived, so
        # early headers would stop clients retrying calls that a dying replica had accepted.
        self.context.set_trailing_metadata(((REQUEST_ID, self.request_id),))
        auth = self.owner.authenticator
        if auth is not None:
            self.key = auth.authenticate(self.context.invocation_metadata())
            auth.charge(self.key, request_chars(request))

    def cancelled(self) -> None:
        remaining = None if self.deadline is None else self.deadline - time.perf_counter()
        self.code = (
            "DEADLINE_EXCEEDED" if remaining is not None and remaining < 0.05 else "CANCELLED"
        )

    def aborted(self) -> None:
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
        metrics = self.owner.metrics
        if metrics:
            metrics.in_flight.dec()
            metrics.observe_call(self.method, self.code, seconds)
        access_log.info(
            "%s %s %.1fms",
            self.method,
            self.code,
            seconds * 1000,
            extra={
                "request_id": self.request_id,
                "method": self.method,
                "status": self.code,
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


def _wrap(handler: grpc.RpcMethodHandler, method: str, owner: "ErrorInterceptor"):
    if handler.unary_unary:
        inner = handler.unary_unary

        async def unary_unary(request, context):
            call = _Call(owner, method, context)
            try:
                await call.begin(request)
                response = await inner(request, context)
                call.code = "OK"
                return response
            except DragomanServerError as exc:
                call.code = exc.status
                call.end()  # before the status goes out: metrics agree with what callers saw
                await _abort(context, exc)
            except asyncio.CancelledError:
                call.cancelled()
                raise
            except Exception as exc:
                if isinstance(exc, grpc.aio.AbortError):
                    call.aborted()
                    raise
                call.code = "INTERNAL"
                call.end()
                await _internal(context, method, exc)
            finally:
                call.end()
                call.release()

        return grpc.unary_unary_rpc_method_handler(
            unary_unary,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream:
        inner_stream = handler.unary_stream

        async def unary_stream(request, context):
            call = _Call(owner, method, context)
            try:
                await call.begin(request)
                async for response in inner_stream(request, context):
                    yield response
                call.code = "OK"
            except DragomanServerError as exc:
                call.code = exc.status
                call.end()  # before the status goes out: metrics agree with what callers saw
                await _abort(context, exc)
            except (asyncio.CancelledError, GeneratorExit):
                call.cancelled()
                raise
            except Exception as exc:
                if isinstance(exc, grpc.aio.AbortError):
                    call.aborted()
                    raise
                call.code = "INTERNAL"
                call.end()
                await _internal(context, method, exc)
            finally:
                call.end()
                call.release()

        return grpc.unary_stream_rpc_method_handler(
            unary_stream,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Maps DragomanServerError to its status code (with RetryInfo when it has a retry delay);
    anything else becomes INTERNAL, logged with its traceback. Also request ids, API keys and
    quotas (`authenticator`), metrics (`metrics`) and the access log: see the module docstring."""

    def __init__(self, authenticator: Authenticator | None = None, metrics=None):
        self.authenticator = authenticator
        self.metrics = metrics

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith(SERVICE_PREFIX):
            return handler
        return _wrap(handler, method, self)
