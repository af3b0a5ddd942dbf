"""Server interceptors. `ErrorInterceptor` is the one place domain errors become gRPC statuses."""

import logging

import grpc
from google.protobuf import duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from .errors import DragomanServerError

log = logging.getLogger(__name__)

SERVICE_PREFIX = "/dragoman.v1.Dragoman/"


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
    metadata = (
        *converted.trailing_metadata,
        ("retry-after", str(max(1, round(exc.retry_after_s)))),
    )
    await context.abort(converted.code, converted.details, metadata)


async def _internal(context: grpc.aio.ServicerContext, method: str, exc: Exception) -> None:
    log.error("%s failed: %s: %s", method, type(exc).__name__, exc, exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")


def _wrap(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    if handler.unary_unary:
        inner = handler.unary_unary

        async def unary_unary(request, context):
            try:
                return await inner(request, context)
            except DragomanServerError as exc:
                await _abort(context, exc)
            except Exception as exc:
                if isinstance(exc, grpc.aio.AbortError):
                    raise
                await _internal(context, method, exc)

        return grpc.unary_unary_rpc_method_handler(
            unary_unary,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    if handler.unary_stream:
        inner_stream = handler.unary_stream

        async def unary_stream(request, context):
            try:
                async for response in inner_stream(request, context):
                    yield response
            except DragomanServerError as exc:
                await _abort(context, exc)
            except Exception as exc:
                if isinstance(exc, grpc.aio.AbortError):
                    raise
                await _internal(context, method, exc)

        return grpc.unary_stream_rpc_method_handler(
            unary_stream,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Maps DragomanServerError to its status code (with RetryInfo when it has a retry delay);
    anything else becomes INTERNAL, logged with its traceback."""

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith(SERVICE_PREFIX):
            return handler
        return _wrap(handler, method)
