"""What the sync and asyncio clients share: channel settings, request building, result conversion.

This is the one place that turns Python arguments into request protos, response protos into result
dataclasses, and ``grpc.RpcError`` into ``DragomanError``. It imports grpc and protobuf only.

Argument checking policy (the same for ``Client`` and ``AsyncClient``):

- an argument of the wrong Python type raises ``TypeError``;
- a value that cannot be put in the request (``to`` missing, an unknown ``length`` or ``format``,
  a negative ``max_words``) raises ``DragomanError`` with ``grpc.StatusCode.INVALID_ARGUMENT``;
- everything else (empty texts, unknown languages or models, unsupported pairs) is checked by the
  server, and arrives as ``DragomanError`` with the server's code and message.

Constructor arguments that make no sense (a bad target, a TLS key without its certificate chain)
raise ``ValueError`` / ``TypeError`` at once.
"""

from __future__ import annotations

import copy
import functools
import ipaddress
import json
import os
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata as _metadata
from importlib import resources
from typing import Any

import grpc
from google.protobuf import (
    any_pb2,
    descriptor_pb2,
    descriptor_pool,
    duration_pb2,
    message_factory,
)

from dragoman.errors import DragomanError, FieldViolation, QuotaViolation
from dragoman.results import (
    GlossaryEntry,
    LanguageScore,
    ModelInfo,
    OutputFlag,
    RouteHop,
    Summary,
    SummaryChunk,
    Translation,
    TranslationChunk,
)
from dragoman.v1 import dragoman_pb2

try:
    __version__ = _metadata.version("dragoman")
except _metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0.0.0+unknown"

SERVICE_NAME = "dragoman.v1.Dragoman"
HEALTH_SERVICE_NAME = "grpc.health.v1.Health"
HEALTH_CHECK_METHOD = f"/{HEALTH_SERVICE_NAME}/Check"
DEFAULT_TARGET = "localhost:50051"
DEFAULT_PORT = 50051
MAX_ATTEMPTS_CAP = 5  # gRPC caps retryPolicy.maxAttempts at 5 anyway
MAX_RECEIVE_MESSAGE_BYTES = 64 * 1024 * 1024  # a batch of whole articles can pass gRPC's 4 MiB

_UINT32_MAX = 2**32 - 1
_LENGTHS = {
    "short": dragoman_pb2.SUMMARY_LENGTH_SHORT,
    "medium": dragoman_pb2.SUMMARY_LENGTH_MEDIUM,
    "long": dragoman_pb2.SUMMARY_LENGTH_LONG,
}
_FORMATS = {
    "paragraph": dragoman_pb2.SUMMARY_FORMAT_PARAGRAPH,
    "bullets": dragoman_pb2.SUMMARY_FORMAT_BULLETS,
}
# Target schemes gRPC resolves itself; "dns:" targets get round_robin over every address.
_SCHEMES = ("dns:", "ipv4:", "ipv6:", "unix:", "unix-abstract:", "vsock:", "xds:", "google-c2p:")


# --------------------------------------------------------------------------------------------
# Wire-compatible twins of grpc.health.v1.HealthCheck{Request,Response}, google.rpc.Status and
# google.rpc.RetryInfo (a google.protobuf.Duration kept as bytes, parsed with duration_pb2),
# in a private descriptor pool: the default pool must not get a second grpc/health/v1/health.proto
# (grpcio-health-checking registers the real one when the server runs in the same process), and
# the client must not depend on grpcio-health-checking or googleapis-common-protos.


def _private_messages() -> tuple[type, ...]:
    field = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="dragoman/_client_wire.proto", package="dragoman._client_wire", syntax="proto3"
    )
    request = file.message_type.add(name="HealthCheckRequest")
    request.field.add(name="service", number=1, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    response = file.message_type.add(name="HealthCheckResponse")
    response.field.add(name="status", number=1, type=field.TYPE_INT32, label=field.LABEL_OPTIONAL)
    status = file.message_type.add(name="Status")
    status.field.add(name="code", number=1, type=field.TYPE_INT32, label=field.LABEL_OPTIONAL)
    status.field.add(name="message", number=2, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    # Repeated google.protobuf.Any on the wire; kept as bytes and parsed with any_pb2 below.
    status.field.add(name="details", number=3, type=field.TYPE_BYTES, label=field.LABEL_REPEATED)
    retry_info = file.message_type.add(name="RetryInfo")  # google.rpc.RetryInfo
    retry_info.field.add(name="delay", number=1, type=field.TYPE_BYTES, label=field.LABEL_OPTIONAL)
    # google.rpc.ErrorInfo; its map<string, string> metadata is, on the wire, a repeated entry.
    entry = file.message_type.add(name="MetadataEntry")
    entry.field.add(name="key", number=1, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    entry.field.add(name="value", number=2, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    error_info = file.message_type.add(name="ErrorInfo")
    error_info.field.add(
        name="reason", number=1, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL
    )
    error_info.field.add(
        name="domain", number=2, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL
    )
    error_info.field.add(
        name="metadata",
        number=3,
        type=field.TYPE_MESSAGE,
        type_name=f".{file.package}.MetadataEntry",
        label=field.LABEL_REPEATED,
    )
    # google.rpc.BadRequest and google.rpc.QuotaFailure: both a repeated message (number 1) of
    # two strings (numbers 1 and 2: field/description, subject/description).
    pair = file.message_type.add(name="StringPair")
    pair.field.add(name="first", number=1, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    pair.field.add(name="second", number=2, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    pairs = file.message_type.add(name="StringPairs")
    pairs.field.add(
        name="items",
        number=1,
        type=field.TYPE_MESSAGE,
        type_name=f".{file.package}.StringPair",
        label=field.LABEL_REPEATED,
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return tuple(
        message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{file.package}.{name}"))
        for name in (
            "HealthCheckRequest",
            "HealthCheckResponse",
            "Status",
            "RetryInfo",
            "ErrorInfo",
            "StringPairs",
        )
    )


(
    HealthCheckRequest,
    HealthCheckResponse,
    _RpcStatus,
    _RetryInfo,
    _ErrorInfo,
    _StringPairs,
) = _private_messages()
_HEALTH_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


def health_request(service: str) -> Any:
    if not isinstance(service, str):
        raise TypeError(f"service must be str, not {type(service).__name__}")
    return HealthCheckRequest(service=service)


def health_status(response: Any) -> str:
    return _HEALTH_STATUS.get(response.status, "UNKNOWN")


# --------------------------------------------------------------------------------------------
# Channel settings


@dataclass(frozen=True)
class ChannelSettings:
    """Everything needed to open a channel and make calls on it."""

    target: str
    options: tuple[tuple[str, Any], ...]
    credentials: grpc.ChannelCredentials | None
    timeout: float | None
    metadata: tuple[tuple[str, str], ...]

    def call_args(self, timeout: float | None, request_id: str | None) -> dict[str, Any]:
        """Keyword arguments for one call: its deadline and metadata."""
        if timeout is None:
            timeout = self.timeout
        else:
            timeout = _check_timeout(timeout)
        metadata = self.metadata
        if request_id is not None:
            if not isinstance(request_id, str):
                raise TypeError(f"request_id must be str, not {type(request_id).__name__}")
            if request_id:
                metadata = (*metadata, ("x-request-id", request_id))
        metadata = (*metadata, *_trace_context())
        return {"timeout": timeout, "metadata": metadata or None}


try:  # optional: the client needs only grpcio and protobuf
    from opentelemetry import propagate as _propagate
except ImportError:  # pragma: no cover - depends on the environment
    _propagate = None


def _trace_context() -> tuple[tuple[str, str], ...]:
    """The current OpenTelemetry context as W3C `traceparent`/`tracestate` metadata, when
    opentelemetry is installed and a span is current; else nothing."""
    if _propagate is None:
        return ()
    carrier: dict[str, str] = {}
    _propagate.inject(carrier)
    return tuple((key.lower(), value) for key, value in carrier.items())


def channel_settings(
    target: str | Iterable[str],
    *,
    timeout: float | None,
    api_key: str | None,
    tls: bool,
    root_certificates: bytes | str | os.PathLike | None,
    private_key: bytes | str | os.PathLike | None,
    certificate_chain: bytes | str | os.PathLike | None,
    credentials: grpc.ChannelCredentials | None,
    retries: int,
    options: Mapping[str, Any] | Iterable[tuple[str, Any]] | None,
) -> ChannelSettings:
    grpc_target, round_robin = resolve_target(target)
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise TypeError(f"retries must be int, not {type(retries).__name__}")
    if retries < 0:
        raise ValueError("retries must be >= 0")
    if api_key is not None and not isinstance(api_key, str):
        raise TypeError(f"api_key must be str, not {type(api_key).__name__}")
    merged: dict[str, Any] = {
        "grpc.service_config": service_config(retries, round_robin),
        "grpc.enable_retries": 1,
        "grpc.max_receive_message_length": MAX_RECEIVE_MESSAGE_BYTES,
        "grpc.primary_user_agent": f"dragoman-python/{__version__}",
    }
    if options is not None:
        merged.update(dict(options.items() if isinstance(options, Mapping) else options))
    return ChannelSettings(
        target=grpc_target,
        options=tuple(merged.items()),
        credentials=channel_credentials(
            tls, root_certificates, private_key, certificate_chain, credentials
        ),
        timeout=None if timeout is None else _check_timeout(timeout),
        metadata=(("authorization", f"Bearer {api_key}"),) if api_key else (),
    )


def service_config(retries: int, round_robin: bool) -> str:
    """The gRPC service config (JSON): wait-for-ready, retries on UNAVAILABLE, load balancing.

    The policy is the contract's own ``protos/dragoman/v1/service_config.json`` (shipped in this
    package as ``dragoman/v1/service_config.json``), with ``maxAttempts`` set from ``retries``
    (no retry policy at all for fewer than 2 attempts) and ``loadBalancingConfig`` only for
    round_robin targets. Dragoman calls wait for a connection until their deadline
    (``waitForReady``); health checks do not, so that a probe of a server that is down answers
    UNAVAILABLE at once.
    """
    config = copy.deepcopy(_shipped_service_config())
    attempts = min(retries + 1, MAX_ATTEMPTS_CAP)
    for method in config["methodConfig"]:
        if attempts >= 2:  # a retryPolicy with maxAttempts < 2 is invalid
            method["retryPolicy"]["maxAttempts"] = attempts
        else:
            method.pop("retryPolicy", None)
    if not round_robin:
        config.pop("loadBalancingConfig", None)
    return json.dumps(config)


@functools.cache
def _shipped_service_config() -> dict[str, Any]:
    return json.loads(
        resources.files("dragoman.v1").joinpath("service_config.json").read_text("utf-8")
    )


def resolve_target(target: str | Iterable[str]) -> tuple[str, bool]:
    """Turns ``target`` into a gRPC target string; the bool says whether to use round_robin.

    - ``"host:port"``: as is, default (pick_first) load balancing.
    - ``"dns:///name:port"``: as is, round_robin over every address the name resolves to (gRPC
      re-resolves it, so a Kubernetes headless service spreads calls over its pods).
    - ``"ipv4:a:p,b:q"`` / ``"ipv6:..."`` with several addresses: as is, round_robin.
    - a list of ``"host:port"`` (or one string of them joined by commas): round_robin over them,
      as an ``ipv4:``/``ipv6:`` target; names in the list are resolved once, here.
    - any other gRPC target (``unix:``, ``xds:``, ...): as is.
    """
    if isinstance(target, str):
        target = target.strip()
        if not target:
            raise ValueError("target is empty")
        if target.startswith(_SCHEMES) or "://" in target:
            if target.startswith("dns:"):
                return target, True
            return target, target.startswith(("ipv4:", "ipv6:")) and "," in target
        if "," not in target:
            return target, False
        target = target.split(",")
    if isinstance(target, bytes | bytearray) or not isinstance(target, Iterable):
        raise TypeError(f"target must be str or a list of str, not {type(target).__name__}")
    addresses = []
    for address in target:
        if not isinstance(address, str):
            raise TypeError(f"target addresses must be str, not {type(address).__name__}")
        if address.strip():
            addresses.append(address.strip())
    if not addresses:
        raise ValueError("target has no address")
    if len(addresses) == 1:
        return resolve_target(addresses[0])
    return _address_list(addresses), True


def _address_list(addresses: list[str]) -> str:
    resolved: dict[tuple[int, str, int], None] = {}  # ordered set of (family, ip, port)
    for address in addresses:
        host, port = _split_host_port(address)
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            for item in _resolve(host, port):
                resolved[item] = None
        else:
            resolved[(ip.version, str(ip), port)] = None
    families = {family for family, _, _ in resolved}
    if families == {4}:
        return "ipv4:" + ",".join(f"{ip}:{port}" for _, ip, port in resolved)
    if families == {6}:
        return "ipv6:" + ",".join(f"[{ip}]:{port}" for _, ip, port in resolved)
    raise ValueError("a target list cannot mix IPv4 and IPv6 addresses")


def _split_host_port(address: str) -> tuple[str, int]:
    if address.startswith("["):  # [v6]:port
        host, _, rest = address[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif address.count(":") == 1:
        host, port = address.split(":")
    else:  # a bare name, IPv4 or IPv6 address
        host, port = address, ""
    if not host or (port and not port.isdigit()):
        raise ValueError(f"bad address {address!r}: expected host:port")
    return host, int(port) if port else DEFAULT_PORT


def _resolve(host: str, port: int) -> list[tuple[int, str, int]]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as err:
        raise ValueError(f"cannot resolve {host!r}: {err}") from None
    v4 = [(4, info[4][0], port) for info in infos if info[0] == socket.AF_INET]
    v6 = [(6, info[4][0], port) for info in infos if info[0] == socket.AF_INET6]
    return v4 or v6  # prefer IPv4 so that "localhost" mixes with IPv4 literals


def channel_credentials(
    tls: bool,
    root_certificates: bytes | str | os.PathLike | None,
    private_key: bytes | str | os.PathLike | None,
    certificate_chain: bytes | str | os.PathLike | None,
    credentials: grpc.ChannelCredentials | None,
) -> grpc.ChannelCredentials | None:
    """TLS credentials, or None for a plaintext channel.

    Certificates and keys are PEM bytes, PEM text or a path to a PEM file; giving any of them
    implies TLS. ``private_key`` with ``certificate_chain`` is mutual TLS.
    """
    pem_args = (root_certificates, private_key, certificate_chain)
    if credentials is not None:
        if not isinstance(credentials, grpc.ChannelCredentials):
            raise TypeError("credentials must be grpc.ChannelCredentials")
        if tls or any(arg is not None for arg in pem_args):
            raise ValueError("give credentials= or tls/root_certificates/private_key, not both")
        return credentials
    if (private_key is None) != (certificate_chain is None):
        raise ValueError("mutual TLS needs both private_key and certificate_chain")
    if not tls and all(arg is None for arg in pem_args):
        return None
    root, key, chain = (_pem(arg) for arg in pem_args)
    return grpc.ssl_channel_credentials(root, key, chain)


def _pem(value: bytes | str | os.PathLike | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str) and value.lstrip().startswith("-----BEGIN"):
        return value.encode("ascii")
    if isinstance(value, str | os.PathLike):
        with open(value, "rb") as file:
            return file.read()
    raise TypeError(f"expected PEM bytes or a file path, not {type(value).__name__}")


def _check_timeout(timeout: Any) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be a number of seconds, not {type(timeout).__name__}")
    if timeout <= 0:
        raise ValueError("timeout must be > 0 seconds")
    return float(timeout)


# --------------------------------------------------------------------------------------------
# Requests


def _invalid(message: str) -> DragomanError:
    return DragomanError(grpc.StatusCode.INVALID_ARGUMENT, message)


def _str(value: Any, name: str) -> str:
    """An optional string argument: None -> ""."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be str, not {type(value).__name__}")
    return value


def _uint32(value: Any, name: str) -> int:
    """An optional non-negative integer argument: None -> 0."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be int, not {type(value).__name__}")
    if not 0 <= value <= _UINT32_MAX:
        raise _invalid(f"{name} must be between 0 and {_UINT32_MAX}, not {value}")
    return value


def _choice(value: Any, name: str, choices: dict[str, int]) -> int:
    if value is None:
        return 0
    if not isinstance(value, str):
        raise TypeError(f"{name} must be str, not {type(value).__name__}")
    try:
        return choices[value.lower()]
    except KeyError:
        expected = ", ".join(repr(choice) for choice in choices)
        raise _invalid(f"{name} must be one of {expected}, not {value!r}") from None


def texts_argument(text_or_texts: str | Iterable[str]) -> list[str]:
    """A str or an iterable of str, as a list."""
    if isinstance(text_or_texts, str):
        return [text_or_texts]
    if isinstance(text_or_texts, bytes | bytearray) or not isinstance(text_or_texts, Iterable):
        raise TypeError(f"texts must be str or a list of str, not {type(text_or_texts).__name__}")
    texts = list(text_or_texts)
    for index, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{index}] must be str, not {type(text).__name__}")
    return texts


def glossary_entries(glossary: Any) -> list[dragoman_pb2.GlossaryEntry]:
    """A dict term -> translation ("" or None keeps the term), or a list of GlossaryEntry
    (or of ``dragoman.v1`` GlossaryEntry protos, or of (term, translation) pairs)."""
    if glossary is None:
        return []
    if isinstance(glossary, Mapping):
        items = list(glossary.items())
    elif isinstance(glossary, str | bytes) or not isinstance(glossary, Iterable):
        raise TypeError(f"glossary must be a dict or a list, not {type(glossary).__name__}")
    else:
        items = []
        for entry in glossary:
            if isinstance(entry, GlossaryEntry | dragoman_pb2.GlossaryEntry):
                items.append((entry.source, entry.target))
            elif isinstance(entry, tuple) and len(entry) == 2:
                items.append(entry)
            else:
                raise TypeError(
                    f"glossary entries must be GlossaryEntry, not {type(entry).__name__}"
                )
    entries = []
    for source, target in items:
        if not isinstance(source, str):
            raise TypeError(f"glossary terms must be str, not {type(source).__name__}")
        if not source:
            raise _invalid("glossary terms must not be empty")
        entries.append(dragoman_pb2.GlossaryEntry(source=source, target=_str(target, "glossary")))
    return entries


def translate_request(
    text_or_texts: str | Iterable[str],
    to: str,
    *,
    source: str | None = None,
    model: str | None = None,
    mime_type: str | None = None,
    glossary: Any = None,
) -> dragoman_pb2.TranslateRequest:
    target_language = _str(to, "to")
    if not target_language:
        raise _invalid("a target language (to) is required")
    return dragoman_pb2.TranslateRequest(
        texts=texts_argument(text_or_texts),
        target_language=target_language,
        source_language=_str(source, "source"),
        model=_str(model, "model"),
        mime_type=_str(mime_type, "mime_type"),
        glossary=glossary_entries(glossary),
    )


def summarize_request(
    text: str,
    *,
    to: str | None = None,
    source: str | None = None,
    max_words: int | None = None,
    length: str | None = None,
    format: str | None = None,
    model: str | None = None,
    mime_type: str | None = None,
) -> dragoman_pb2.SummarizeRequest:
    if not isinstance(text, str):
        raise TypeError(f"text must be str, not {type(text).__name__}")
    return dragoman_pb2.SummarizeRequest(
        text=text,
        source_language=_str(source, "source"),
        target_language=_str(to, "to"),
        max_words=_uint32(max_words, "max_words"),
        length=_choice(length, "length", _LENGTHS),
        format=_choice(format, "format", _FORMATS),
        model=_str(model, "model"),
        mime_type=_str(mime_type, "mime_type"),
    )


def detect_request(
    text: str, *, max_results: int | None = None
) -> dragoman_pb2.DetectLanguageRequest:
    if not isinstance(text, str):
        raise TypeError(f"text must be str, not {type(text).__name__}")
    return dragoman_pb2.DetectLanguageRequest(
        text=text, max_results=_uint32(max_results, "max_results")
    )


def list_models_request() -> dragoman_pb2.ListModelsRequest:
    return dragoman_pb2.ListModelsRequest()


# --------------------------------------------------------------------------------------------
# Results


def _confidence(value: float) -> float:
    return round(value, 6)  # float32 on the wire: 0.9 would read 0.8999999761581421


def _enum(enum: Any, value: int, prefix: str) -> str:
    try:
        return enum.Name(value).removeprefix(prefix).lower()
    except ValueError:  # a value newer than this client
        return "unknown"


def translation(message: dragoman_pb2.Translation) -> Translation:
    return Translation(
        text=message.text,
        source_language=message.source_language,
        source_language_detected=message.source_language_detected,
        detection_confidence=_confidence(message.detection_confidence),
        models=list(message.models),
        route=[
            RouteHop(hop.model, hop.source_language, hop.target_language) for hop in message.route
        ],
        pivoted=message.pivoted,
        applied_glossary={entry.source: entry.target for entry in message.applied_glossary},
        input_tokens=message.input_tokens,
        output_tokens=message.output_tokens,
        flags=output_flags(message.flags),
    )


def output_flags(messages: Iterable[dragoman_pb2.OutputFlag]) -> list[OutputFlag]:
    return [OutputFlag(f.segment_index, f.kind, f.regenerated, f.detail) for f in messages]


def translations(response: dragoman_pb2.TranslateResponse) -> list[Translation]:
    return [translation(message) for message in response.translations]


def chunk(message: dragoman_pb2.TranslateStreamResponse) -> TranslationChunk:
    return TranslationChunk(
        text_index=message.text_index,
        paragraph_index=message.paragraph_index,
        text=message.text,
        last=message.last,
        source_language=message.source_language,
        source_language_detected=message.source_language_detected,
        detection_confidence=_confidence(message.detection_confidence),
        models=list(message.models),
        pivoted=message.pivoted,
        flags=output_flags(message.flags),
    )


def summary(response: dragoman_pb2.SummarizeResponse) -> Summary:
    return Summary(
        summary=response.summary,
        source_language=response.source_language,
        source_language_detected=response.source_language_detected,
        detection_confidence=_confidence(response.detection_confidence),
        target_language=response.target_language,
        models=list(response.models),
        input_tokens=response.input_tokens,
        output_tokens=response.output_tokens,
        path=response.path,
        rounds=response.rounds,
    )


def summary_chunk(message: dragoman_pb2.SummarizeStreamResponse) -> SummaryChunk:
    return SummaryChunk(
        delta=message.delta, summary=summary(message.done) if message.HasField("done") else None
    )


def language_scores(response: dragoman_pb2.DetectLanguageResponse) -> list[LanguageScore]:
    return [
        LanguageScore(score.language, _confidence(score.confidence)) for score in response.languages
    ]


def model_infos(response: dragoman_pb2.ListModelsResponse) -> list[ModelInfo]:
    return [
        ModelInfo(
            name=model.name,
            task=_enum(dragoman_pb2.Task, model.task, "TASK_"),
            languages=list(model.languages),
            source=model.source,
            state=_enum(dragoman_pb2.ModelState, model.state, "MODEL_STATE_"),
            error=model.error,
            backend=model.backend,
            device=model.device,
        )
        for model in response.models
    ]


# --------------------------------------------------------------------------------------------
# Errors


def rpc_error(error: grpc.RpcError) -> DragomanError:
    """The DragomanError for a failed call (sync ``grpc.RpcError`` or ``grpc.aio.AioRpcError``),
    with the standard error details (ErrorInfo, BadRequest, QuotaFailure, RetryInfo) parsed."""
    code = _call(error, "code") or grpc.StatusCode.UNKNOWN
    message = _call(error, "details") or ""
    details: tuple[Any, ...] = ()
    retry_after_s: float | None = None
    for key, value in _call(error, "trailing_metadata") or ():
        try:
            if key == "grpc-status-details-bin":
                status = _RpcStatus.FromString(value)
                details = tuple(any_pb2.Any.FromString(item) for item in status.details)
            elif key == "retry-after" and retry_after_s is None:
                retry_after_s = float(value)
        except Exception:  # malformed details are not worth hiding the error for
            pass
    parsed: dict[str, Any] = {}
    for detail in details:
        kind = detail.type_url.rpartition("/")[2]
        try:
            if kind == "google.rpc.RetryInfo":
                raw = _RetryInfo.FromString(detail.value).delay
                delay = duration_pb2.Duration.FromString(raw)
                retry_after_s = delay.seconds + delay.nanos / 1e9
            elif kind == "google.rpc.ErrorInfo":
                info = _ErrorInfo.FromString(detail.value)
                parsed["reason"], parsed["domain"] = info.reason or None, info.domain or None
                parsed["metadata"] = {e.key: e.value for e in info.metadata}
            elif kind == "google.rpc.BadRequest":
                parsed["field_violations"] = tuple(
                    FieldViolation(p.first, p.second)
                    for p in _StringPairs.FromString(detail.value).items
                )
            elif kind == "google.rpc.QuotaFailure":
                parsed["quota_violations"] = tuple(
                    QuotaViolation(p.first, p.second)
                    for p in _StringPairs.FromString(detail.value).items
                )
        except Exception:  # one malformed detail does not hide the others
            continue
    return DragomanError(
        code,
        message,
        details,
        _call(error, "debug_error_string"),
        retry_after_s,
        **parsed,
    )


def _call(error: grpc.RpcError, name: str) -> Any:
    method = getattr(error, name, None)
    if not callable(method):
        return None
    try:
        return method()
    except Exception:
        return None
