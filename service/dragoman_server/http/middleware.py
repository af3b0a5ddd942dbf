"""The frame around every HTTP call: the same guarantees as the gRPC call interceptor, through the
same code (`admission.py`, `access_log.py`, `request_ids.py`, `status.py`, the metrics).

For each call of an admitted route (every route unless declared `endpoint(admit=False)`; static
files are public):
1. a `CallRecord` takes the request id (`x-request-id` header, else a new one; returned in the
   `x-request-id` response header of every response, streams included), the peer, the deadline;
2. the API key: `Authorization: Bearer KEY`, or, when the header is absent, the route's own
   source (`endpoint(api_key_from=...)`, e.g. LibreTranslate's `api_key` body field);
3. the body is read, at most `max_message_bytes` (else INVALID_ARGUMENT MESSAGE_TOO_LARGE);
   `request_body(request)` gives it to the handler;
4. a concurrency slot (`max_concurrent_requests`, shared with gRPC);
5. the handler runs; it validates and charges the quota through the servicer (only valid
   requests cost anything), and calls the data plane;
6. a domain error becomes the route's error response (`endpoint(render_error=...)`, by default
   `errors.error_response`: google.rpc.Status JSON); anything else is INTERNAL (logged with its
   traceback); the call is counted in the metrics (method label: the route, e.g.
   `POST /v1/translate`) and written to the access log, once; with tracing on (tracing.py), the
   call is one server span named like its metric label, parent from a `traceparent` header.

Deadlines: `grpc-timeout` (gRPC's format, e.g. `10S`, `500m`) or `X-Server-Timeout` (seconds, as
Google's APIs take it) bounds the call; past it the work is cancelled and the answer is
DEADLINE_EXCEEDED (504). A client that disconnects cancels the handler (the runner is started
with `handler_cancellation=True`), and with it the call's queued segments; it is logged as
CANCELLED (499).

A stream handler whose response is already under way registers `call_of(request).stream_error`
(an async function of the domain error): errors after the headers went out are written into the
stream by it, and still counted and logged with their code.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import logging
import math
import re
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from multidict import MultiDict

from ..access_log import CallRecord
from ..admission import caller_var, forget_caller
from ..errors import DeadlineExceeded, DragomanServerError, InvalidArgument
from ..request_ids import REQUEST_ID, request_id_of
from ..status import internal_error
from ..tracing import server_span
from .errors import GRPC_CODE_OF_HTTP, error_response, generic_error_json

log = logging.getLogger(__name__)

CONTEXT_KEY = web.AppKey("dragoman_http_context", object)
# Typed request keys where aiohttp has them (3.13+); plain strings before.
_RequestKey = getattr(web, "RequestKey", lambda name, _type: name)
_CALL = _RequestKey("dragoman_call", object)
_REQUEST_ID = _RequestKey("dragoman_request_id", str)
_PREPARED = _RequestKey("dragoman_prepared", bool)

ErrorRenderer = Callable[[DragomanServerError, str], web.StreamResponse]
KeySource = Callable[[web.Request], Awaitable[str | None]]


@dataclass(frozen=True)
class Endpoint:
    """How the middleware treats one route's handler (see `endpoint`)."""

    name: str | None = None
    admit: bool = True
    render_error: ErrorRenderer | None = None
    api_key_from: KeySource | None = None


_DEFAULT = Endpoint()
_PUBLIC = Endpoint(admit=False)


def endpoint(
    name: str | None = None,
    *,
    admit: bool = True,
    render_error: ErrorRenderer | None = None,
    api_key_from: KeySource | None = None,
):
    """Declare a handler's treatment: `name` its metrics/log label (default `METHOD /path`);
    `admit=False` for public routes (health, documents; no key, no slot, no access log);
    `render_error(error, request_id)` to answer errors in the route's own shape;
    `api_key_from(request)` an API key source used when no `Authorization` header is sent
    (the body is already read: `request_body(request)`)."""
    declared = Endpoint(name, admit, render_error, api_key_from)

    def declare(handler):
        handler.dragoman_endpoint = declared
        return handler

    return declare


def _endpoint_of(request: web.Request) -> Endpoint:
    match = request.match_info
    if match.http_exception is not None:  # no such route / method: answered without admission
        return _PUBLIC
    route = match.route
    if isinstance(route.resource, web.StaticResource):
        return _PUBLIC
    return getattr(match.handler, "dragoman_endpoint", _DEFAULT)


class HttpCall:
    """One admitted HTTP call (`call_of(request)` from a handler)."""

    def __init__(self, ctx, request: web.Request, declared: Endpoint, deadline_s: float | None):
        self.ctx = ctx
        self.request = request
        self.endpoint = declared
        resource = request.match_info.route.resource
        path = resource.canonical if resource is not None else request.path
        self.method = declared.name or f"{request.method} {path}"
        peername = request.transport.get_extra_info("peername") if request.transport else None
        self.record = CallRecord(
            self.method,
            metrics=ctx.metrics,
            metadata=[(k.lower(), v) for k, v in request.headers.items()],
            peer=_peer(peername),
            time_remaining=deadline_s,
        )
        self.body = b""
        self.stream_error: Callable[[DragomanServerError], Awaitable[None]] | None = None
        self.stream_response: web.StreamResponse | None = None
        self._holds_slot = False
        self._caller_token = None
        self.failed = False

    @property
    def request_id(self) -> str:
        return self.record.request_id

    async def admit(self) -> None:
        """API key, body (size-checked), concurrency slot; raises a domain error."""
        admission = self.ctx.admission
        header = self.request.headers.get("Authorization")
        key_source = self.endpoint.api_key_from
        authenticated = False
        if header is not None or key_source is None:
            self._authenticate(header)
            authenticated = True
        await self._read_body()
        if not authenticated:
            key = await key_source(self.request)
            self._authenticate(f"Bearer {key}" if key else None)
        admission.concurrency.acquire()
        self._holds_slot = True

    def _authenticate(self, header: str | None) -> None:
        metadata = [] if header is None else [("authorization", header)]
        key = self.ctx.admission.authenticate(metadata)
        self.record.key = key
        self._caller_token = caller_var.set(key)

    async def _read_body(self) -> None:
        if not self.request.body_exists:
            return
        admission = self.ctx.admission
        length = self.request.content_length
        if length is not None:
            admission.check_size(length)
        try:
            self.body = await self.request.read()
        except web.HTTPRequestEntityTooLarge as exc:  # chunked, past aiohttp's limit
            admission.check_size(exc.actual_size)
            raise
        admission.check_size(len(self.body))

    def fail(self, error: DragomanServerError) -> None:
        """Record an error answered by the handler itself (e.g. written into a stream)."""
        self.failed = True
        self.record.failed(error.status, error.reason)

    def end(self) -> None:
        if self._holds_slot:
            self._holds_slot = False
            self.ctx.admission.concurrency.release()
        self.record.end()
        self.record.release()
        forget_caller(self._caller_token)
        self._caller_token = None


def call_of(request: web.Request) -> HttpCall:
    """The admitted call of a request (inside a handler)."""
    return request[_CALL]


def request_body(request: web.Request) -> bytes:
    """The request body as the middleware read it (size-checked); b"" when there is none."""
    call = request.get(_CALL)
    return call.body if call is not None else b""


async def request_form(request: web.Request) -> MultiDict:
    """The form fields of a `application/x-www-form-urlencoded` or `multipart/form-data` body,
    from the body the middleware read (aiohttp's `request.post()` would read multipart from the
    stream, which is consumed by then). Text fields are str; file parts are bytes. An empty
    MultiDict for other content types. InvalidArgument for a form that cannot be parsed."""
    body = request_body(request)
    content_type = request.content_type
    if content_type == "application/x-www-form-urlencoded":
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidArgument(
                "the form body is not UTF-8", reason="REQUEST_UNDECODABLE"
            ) from None
        return MultiDict(urllib.parse.parse_qsl(text, keep_blank_values=True))
    if content_type != "multipart/form-data":
        return MultiDict()
    # The standard library's MIME parser: multipart/form-data is MIME (RFC 7578).
    head = f"Content-Type: {request.headers.get('Content-Type', '')}\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise InvalidArgument(
            "the multipart form body cannot be parsed", reason="REQUEST_UNDECODABLE"
        )
    fields = MultiDict()
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name is None:
            continue
        payload = part.get_payload(decode=True) or b""
        if part.get_filename() is None:
            charset = part.get_content_charset() or "utf-8"
            try:
                fields.add(name, payload.decode(charset))
            except (UnicodeDecodeError, LookupError):
                raise InvalidArgument(
                    f"form field {name!r} is not {charset} text",
                    reason="REQUEST_UNDECODABLE",
                    field=name,
                ) from None
        else:
            fields.add(name, payload)
    return fields


def _peer(peername) -> str:
    if not peername:
        return "-"
    host, port = peername[0], peername[1]
    return f"ipv6:[{host}]:{port}" if ":" in host else f"ipv4:{host}:{port}"


_GRPC_TIMEOUT = re.compile(r"^\s*(\d{1,8})([HMSmun])\s*$")
_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def deadline_of(headers) -> float | None:
    """Seconds the caller allows (`grpc-timeout` or `X-Server-Timeout`), None: no deadline."""
    value = headers.get("grpc-timeout")
    if value is not None:
        match = _GRPC_TIMEOUT.match(value)
        if match is None:
            raise InvalidArgument(
                f"grpc-timeout header {value!r}: expected up to 8 digits and a unit "
                "(H, M, S, m, u, n), e.g. '10S'",
                reason="DEADLINE_MALFORMED",
                field="grpc-timeout",
            )
        return int(match.group(1)) * _UNITS[match.group(2)]
    value = headers.get("X-Server-Timeout")
    if value is not None:
        try:
            seconds = float(value)
        except ValueError:
            seconds = math.nan
        if not (seconds > 0 and math.isfinite(seconds)):
            raise InvalidArgument(
                f"X-Server-Timeout header {value!r}: expected a positive number of seconds",
                reason="DEADLINE_MALFORMED",
                field="X-Server-Timeout",
            )
        return seconds
    return None


@web.middleware
async def dragoman_middleware(request: web.Request, handler):
    declared = _endpoint_of(request)
    if not declared.admit:
        return await _public(request, handler)
    ctx = request.app[CONTEXT_KEY]
    try:
        deadline_s = deadline_of(request.headers)
    except DragomanServerError as error:
        deadline_s, bad_deadline = None, error
    else:
        bad_deadline = None
    call = HttpCall(ctx, request, declared, deadline_s)
    request[_CALL] = call
    span = server_span(
        call.method,
        request.headers,  # W3C trace context: traceparent, tracestate
        **{
            "http.request.method": request.method,
            "url.path": request.path,
            "dragoman.request_id": call.request_id,
        },
    )
    render = declared.render_error or error_response
    error: DragomanServerError | None = None
    deadline = asyncio.timeout(deadline_s)
    try:
        try:
            async with deadline:
                if bad_deadline is not None:
                    raise bad_deadline
                await call.admit()
                response = await handler(request)
        except TimeoutError:
            if not deadline.expired():  # a TimeoutError of the handler's own: a failure
                raise
            raise DeadlineExceeded(
                f"the call's deadline ({deadline_s:g}s) passed before it finished",
                reason="DEADLINE_EXCEEDED",
            ) from None
        if not call.failed:
            call.record.code = "OK"
        return response
    except DragomanServerError as exc:
        error = exc
    except (asyncio.CancelledError, ConnectionResetError):  # the caller went away
        call.record.cancelled()
        raise
    except web.HTTPException as exc:
        if exc.status < 400:
            call.record.code = "OK"
            raise
        code = GRPC_CODE_OF_HTTP.get(exc.status, "UNKNOWN")
        call.record.failed(code, None)
        return web.json_response(
            generic_error_json(exc.status, exc.text or exc.reason), status=exc.status
        )
    except Exception as exc:
        log.error("%s failed: %s: %s", call.method, type(exc).__name__, exc, exc_info=exc)
        error = internal_error(exc)
    finally:
        if error is not None:
            call.fail(error)
        call.end()  # before the answer goes out: metrics agree with what callers saw
        if span is not None:
            span.end(call.record.code, call.record.reason)
    if request.get(_PREPARED):  # the stream's headers are out: the error goes in it
        if call.stream_error is not None:
            try:
                await call.stream_error(error)
            except (ConnectionError, RuntimeError):
                pass
        return call.stream_response
    return render(error, call.request_id)


async def _public(request: web.Request, handler):
    request[_REQUEST_ID] = request_id_of([(k.lower(), v) for k, v in request.headers.items()])
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return web.json_response(
            generic_error_json(exc.status, exc.text or exc.reason), status=exc.status
        )
    except DragomanServerError as error:
        return error_response(error, request[_REQUEST_ID])


async def on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Every response carries the call's request id; a stream's errors go into its body."""
    call = request.get(_CALL)
    request_id = call.request_id if call is not None else request.get(_REQUEST_ID)
    if request_id:
        response.headers[REQUEST_ID] = request_id
    request[_PREPARED] = True
    if call is not None:
        call.stream_response = response
