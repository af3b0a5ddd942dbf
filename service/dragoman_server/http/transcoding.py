"""HTTP/JSON transcoding of dragoman.v1, from the proto's own `google.api.http` annotations.

Every RPC with an annotation is mounted at its verb and path (read from the method descriptors at
start, so the proto is the one table of routes), and runs through the same `DragomanServicer`
method as over gRPC: one code path for validation, quota charging and the data plane.

- Request bodies (`body: "*"`) and responses are the canonical proto3 JSON mapping
  (`google.protobuf.json_format`): lowerCamelCase names (proto names accepted too), enums by
  name, every field printed; an unknown field is INVALID_ARGUMENT (reason UNKNOWN_FIELD) naming
  it; a body that is not JSON of the message is INVALID_ARGUMENT REQUEST_UNDECODABLE. The body
  is read as JSON whatever its Content-Type (as grpc-gateway does; `curl -d` sends a form type).
  A method without a body takes its fields as query parameters (`?name=value`).
- Server streams are newline-delimited JSON (`application/x-ndjson`), one message a line, or
  server-sent events (`data: {...}`) when the caller sends `Accept: text/event-stream`. The
  status of a stream is known before its first message (validation, quota): errors found then are
  an ordinary error response; an error later is the stream's last item (`{"error": {...}}`, or
  an SSE `event: error`).

Also here: `/healthz` (liveness), `/readyz` (readiness, mirrors gRPC health: 200 SERVING, 503
otherwise) and `/openapi.json`, an OpenAPI 3 document generated from the same descriptors
(`openapi.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from dataclasses import dataclass

from aiohttp import web
from google.api import annotations_pb2
from google.protobuf import json_format
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from dragoman.v1 import dragoman_pb2

from ..errors import InvalidArgument
from ..servicer import DragomanServicer
from .errors import error_json
from .middleware import call_of, endpoint, request_body

SERVICE = dragoman_pb2.DESCRIPTOR.services_by_name["Dragoman"]
NDJSON = "application/x-ndjson"
SSE = "text/event-stream"
# Bodies and responses larger than this are (de)serialised in a worker thread, not on the loop.
OFF_LOOP_BYTES = 256 * 1024


@dataclass(frozen=True)
class HttpBinding:
    """One RPC's `google.api.http` rule: verb, path and body ("*" or "" for none)."""

    method: MethodDescriptor
    verb: str
    path: str
    body: str

    @property
    def streaming(self) -> bool:
        return self.method.server_streaming


def bindings(service=SERVICE) -> list[HttpBinding]:
    """The HTTP rules of every annotated method of `service`, in declaration order."""
    found = []
    for method in service.methods:
        options = method.GetOptions()
        if not options.HasExtension(annotations_pb2.http):
            continue
        rule = options.Extensions[annotations_pb2.http]
        verb = rule.WhichOneof("pattern")
        if verb == "custom" or rule.additional_bindings or "{" in getattr(rule, verb):
            # Not used by dragoman.v1; refuse rather than mount something half-understood.
            raise ValueError(f"{method.full_name}: unsupported google.api.http rule {rule}")
        found.append(HttpBinding(method, verb.upper(), getattr(rule, verb), rule.body))
    return found


def message_class(descriptor) -> type[Message]:
    return getattr(dragoman_pb2, descriptor.name)


# --- requests --------------------------------------------------------------------------------

_UNKNOWN = re.compile(r'has no field named "([^"]+)" at "([^"]*)"')
_BAD_FIELD = re.compile(r"Failed to parse (\S+) field: (.*)", re.DOTALL)


def _reject_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key!r}")
        seen[key] = value
    return seen


def parse_json_body(body: bytes, cls: type[Message], method: str) -> Message:
    """The request message of a JSON body, or INVALID_ARGUMENT naming what is wrong."""
    message = cls()
    if not body.strip():
        return message  # no body: every field at its default (validation says what is missing)
    try:
        value = json.loads(body.decode("utf-8"), object_pairs_hook=_reject_duplicates)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidArgument(
            f"the request body is not JSON ({exc})",
            reason="REQUEST_UNDECODABLE",
            metadata={"method": method},
        ) from None
    if not isinstance(value, dict):
        raise InvalidArgument(
            f"the request body must be a JSON object (a {cls.DESCRIPTOR.name}), "
            f"not {type(value).__name__}",
            reason="REQUEST_UNDECODABLE",
            metadata={"method": method},
        )
    _parse_dict(value, message, method)
    return message


def _parse_dict(value: dict, message: Message, method: str, where: str = "body") -> None:
    try:
        json_format.ParseDict(value, message)
    except json_format.ParseError as exc:
        text = str(exc)
        unknown = _UNKNOWN.search(text)
        if unknown:
            name, at = unknown.groups()
            path = ".".join(p for p in (at.partition(".")[2], name) if p)
            raise InvalidArgument(
                f"{path}: no such field in {message.DESCRIPTOR.name} "
                f"({where}; fields are named as in the proto, or in lowerCamelCase)",
                reason="UNKNOWN_FIELD",
                field=path,
                metadata={"method": method},
            ) from None
        bad = _BAD_FIELD.match(text)
        field = bad.group(1) if bad else ""
        raise InvalidArgument(
            f"{field or where}: not a valid {message.DESCRIPTOR.name} field value ({text})",
            reason="REQUEST_UNDECODABLE",
            field=field,
            metadata={"method": method},
        ) from None


def parse_query(query, cls: type[Message], method: str) -> Message:
    """The request message of a bodiless method from its query parameters."""
    message = cls()
    values: dict[str, object] = {}
    for key in query.keys():
        got = query.getall(key)
        field = message.DESCRIPTOR.fields_by_name.get(key) or next(
            (f for f in message.DESCRIPTOR.fields if f.json_name == key), None
        )
        repeated = field is not None and field.is_repeated
        values[key] = got if repeated else got[-1]
    _parse_dict(values, message, method, "query")
    return message


# --- responses -------------------------------------------------------------------------------


def to_json(message: Message) -> bytes:
    return json.dumps(
        json_format.MessageToDict(message, always_print_fields_with_no_presence=True),
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode("utf-8")


async def _off_loop_if_large(size: int, function, *args):
    if size > OFF_LOOP_BYTES:
        return await asyncio.to_thread(function, *args)
    return function(*args)


def wants_sse(request: web.Request) -> bool:
    return SSE in request.headers.get("Accept", "")


def _sse(data: bytes, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + data + b"\n\n"  # our JSON is one line: no newline inside


class Transcoder:
    """The handlers of the annotated RPCs."""

    def __init__(self, servicer: DragomanServicer):
        self.servicer = servicer

    def route(self, binding: HttpBinding) -> web.RouteDef:
        handler = self._streaming(binding) if binding.streaming else self._unary(binding)
        handler.__name__ = binding.method.name
        handler.__doc__ = (
            f"{binding.verb} {binding.path}: dragoman.v1.Dragoman/{binding.method.name}"
        )
        return web.route(binding.verb, binding.path, endpoint()(handler))

    async def _request(self, binding: HttpBinding, request: web.Request) -> Message:
        cls = message_class(binding.method.input_type)
        full = f"/{SERVICE.full_name}/{binding.method.name}"
        if binding.body == "*":
            # Read as JSON whatever the Content-Type (as grpc-gateway does): `curl -d` sends
            # application/x-www-form-urlencoded.
            body = request_body(request)
            return await _off_loop_if_large(len(body), parse_json_body, body, cls, full)
        return parse_query(request.query, cls, full)

    def _unary(self, binding: HttpBinding):
        rpc = getattr(self.servicer, binding.method.name)

        async def handler(request: web.Request) -> web.Response:
            message = await self._request(binding, request)
            response = await rpc(message, None)
            size = response.ByteSize()
            body = await _off_loop_if_large(size, to_json, response)
            return web.Response(body=body, content_type="application/json", charset="utf-8")

        return handler

    def _streaming(self, binding: HttpBinding):
        rpc = getattr(self.servicer, binding.method.name)

        async def handler(request: web.Request) -> web.StreamResponse:
            message = await self._request(binding, request)
            sse = wants_sse(request)
            async with contextlib.aclosing(rpc(message, None)) as items:
                # Validation and the quota run before the first message: their errors are an
                # ordinary error response, with its HTTP status.
                try:
                    first = await anext(items)
                except StopAsyncIteration:
                    first = None
                response = web.StreamResponse(
                    headers={
                        "Content-Type": SSE if sse else NDJSON,
                        "Cache-Control": "no-cache",
                        "X-Accel-Buffering": "no",  # nginx: pass each message on at once
                    }
                )
                await response.prepare(request)

                async def write_error(error) -> None:
                    data = json.dumps(error_json(error), ensure_ascii=False).encode("utf-8")
                    await response.write(_sse(data, "error") if sse else data + b"\n")
                    await response.write_eof()

                call_of(request).stream_error = write_error
                if first is not None:
                    await _write(response, first, sse)
                    async for item in items:
                        await _write(response, item, sse)
            await response.write_eof()
            return response

        return handler


async def _write(response: web.StreamResponse, item: Message, sse: bool) -> None:
    data = to_json(item)
    await response.write(_sse(data) if sse else data + b"\n")


# --- health and the OpenAPI document ---------------------------------------------------------


def _health_json(ctx) -> dict:
    return {
        "status": "SERVING" if ctx.health.serving() else "NOT_SERVING",
        "models": {name: e.state.value for name, e in ctx.health.registry.entries.items()},
    }


def routes(ctx) -> list[web.AbstractRouteDef]:
    """The annotated RPCs, /healthz, /readyz and /openapi.json."""
    from .openapi import openapi_document

    servicer = ctx.servicer or DragomanServicer(ctx.dataplane, charge=ctx.admission.charge)
    transcoder = Transcoder(servicer)

    @endpoint(admit=False)
    async def healthz(request: web.Request) -> web.Response:
        """Liveness: 200 while the server runs (model loading included), 503 once it stops."""
        status = 503 if ctx.health.shutting_down() else 200
        return web.json_response(_health_json(ctx), status=status)

    @endpoint(admit=False)
    async def readyz(request: web.Request) -> web.Response:
        """Readiness: 200 exactly when gRPC health is SERVING, else 503."""
        return web.json_response(_health_json(ctx), status=200 if ctx.health.serving() else 503)

    document = json.dumps(openapi_document(), indent=2).encode("utf-8")

    @endpoint(admit=False)
    async def openapi(request: web.Request) -> web.Response:
        """The OpenAPI 3 document of these routes, generated from the proto descriptors."""
        return web.Response(body=document, content_type="application/json")

    return [
        *(transcoder.route(b) for b in bindings()),
        web.get("/healthz", healthz),
        web.get("/readyz", readyz),
        web.get("/openapi.json", openapi),
    ]
