"""The call interceptor: the frame around every call of the Dragoman service.

Each call, unary or streaming, goes through one `CallScope`:
1. a `CallRecord` (access_log.py) takes the request id (`x-request-id`, returned in the
   trailers), the peer and the start time;
2. admission (admission.py): the API key, a concurrency slot, the message size;
3. the request bytes are decoded here, after authentication (the handler is registered with no
   deserializer), so undecodable bytes are an ordinary INVALID_ARGUMENT (REQUEST_UNDECODABLE),
   counted and logged like any call, and cost an unauthenticated caller nothing but a refusal;
4. the handler runs (the servicer validates, charges the quota, calls the data plane);
5. on the way out, any domain error becomes its status with details (status.py); anything else
   becomes INTERNAL (reason INTERNAL) and one log record with its traceback; the call is counted
   in the metrics and written to the access log, once;
6. with tracing on (tracing.py), the call is one server span (W3C trace context from the
   metadata, `dragoman.request_id` and `dragoman.status` as attributes), current while the
   handler runs, so the data plane's step spans are its children.

Health checks and reflection are not intercepted: probes stay open and unlimited.
"""

import asyncio
import logging

import grpc

from .access_log import CallRecord
from .admission import Admission, caller_var, forget_caller
from .errors import DragomanServerError
from .request_ids import REQUEST_ID
from .status import grpc_status_of, internal_error, undecodable_error
from .tracing import server_span

log = logging.getLogger(__name__)

SERVICE_PREFIX = "/dragoman.v1.Dragoman/"


class CallScope:
    """`async with CallScope(...) as call:` around one call's handler; see the module docstring."""

    def __init__(self, interceptor: "CallInterceptor", method: str, deserialize, context):
        self.admission = interceptor.admission
        self.metrics = interceptor.metrics
        self.method = method
        self.deserialize = deserialize
        self.context = context
        self.record: CallRecord | None = None
        self._holds_slot = False
        self._caller_token = None
        self._span = None

    async def __aenter__(self) -> "CallScope":
        self.record = CallRecord(self.method, self.context, self.metrics)
        # In trailers, not early headers: gRPC never retries a call once headers have arrived, so
        # early headers would stop clients retrying calls that a dying replica had accepted.
        self.context.set_trailing_metadata(((REQUEST_ID, self.record.request_id),))
        self._span = server_span(
            self.method.lstrip("/"),
            self.context.invocation_metadata() or (),
            **{
                "rpc.system": "grpc",
                "rpc.service": SERVICE_PREFIX.strip("/"),
                "rpc.method": self.method.removeprefix(SERVICE_PREFIX),
                "dragoman.request_id": self.record.request_id,
            },
        )
        return self

    def admit(self, raw: bytes):
        """Authenticate, take a concurrency slot, check the size, decode: the request, or raise."""
        key = self.admission.authenticate(self.context.invocation_metadata())
        self.record.key = key
        self._caller_token = caller_var.set(key)
        self.admission.concurrency.acquire()
        self._holds_slot = True
        self.admission.check_size(len(raw))
        try:
            return self.deserialize(raw) if self.deserialize else raw
        except Exception as exc:  # protobuf's DecodeError, or anything a deserializer raises
            raise undecodable_error(exc, self.method) from None

    def ok(self) -> None:
        self.record.code = "OK"

    def _end(self) -> None:
        if self._holds_slot:
            self._holds_slot = False
            self.admission.concurrency.release()
        self.record.end()
        if self._span is not None:
            span, self._span = self._span, None
            span.end(self.record.code, self.record.reason)

    async def __aexit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc is None:
                return False
            if isinstance(exc, DragomanServerError):
                error = exc
            elif isinstance(exc, asyncio.CancelledError | GeneratorExit):
                self.record.cancelled()
                return False
            elif isinstance(exc, grpc.aio.AbortError):
                self.record.aborted()
                return False
            elif isinstance(exc, Exception):
                log.error("%s failed: %s: %s", self.method, type(exc).__name__, exc, exc_info=exc)
                error = internal_error(exc)
            else:
                return False
            self.record.failed(error.status, error.reason)
            self._end()  # before the status goes out: metrics and trace agree with what callers saw
            status = grpc_status_of(error)
            await self.context.abort(
                status.code,
                status.details,
                ((REQUEST_ID, self.record.request_id), *status.trailing_metadata),
            )
        finally:
            self._end()
            self.record.release()
            forget_caller(self._caller_token)
        return False


def _wrap(handler: grpc.RpcMethodHandler, method: str, interceptor: "CallInterceptor"):
    deserialize = handler.request_deserializer
    if handler.unary_unary:
        inner = handler.unary_unary

        async def unary_unary(raw, context):
            async with CallScope(interceptor, method, deserialize, context) as call:
                response = await inner(call.admit(raw), context)
                call.ok()
                return response

        return grpc.unary_unary_rpc_method_handler(
            unary_unary, response_serializer=handler.response_serializer
        )
    if handler.unary_stream:
        inner_stream = handler.unary_stream

        async def unary_stream(raw, context):
            async with CallScope(interceptor, method, deserialize, context) as call:
                async for response in inner_stream(call.admit(raw), context):
                    yield response
                call.ok()

        return grpc.unary_stream_rpc_method_handler(
            unary_stream, response_serializer=handler.response_serializer
        )
    return handler  # the service has no client-streaming methods


class CallInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every method of the Dragoman service in a `CallScope`."""

    def __init__(self, admission: Admission | None = None, metrics=None):
        self.admission = admission or Admission()
        self.metrics = metrics

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith(SERVICE_PREFIX):
            return handler
        return _wrap(handler, method, self)
