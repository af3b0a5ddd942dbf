"""OpenTelemetry tracing: one server span per call, child spans for its steps; off by default.

Off (no `otel_exporter_otlp_endpoint`, no `OTEL_EXPORTER_OTLP_ENDPOINT`), nothing is installed:
`span()` returns a shared null context and `server_span()` None, so a call pays one function call
and one `if` per step. On, a `TracerProvider` of our own (not the process-global one, so that
tests and embedders can install and remove it) batches spans to an OTLP/gRPC collector.

Spans are made per call and per text, never per segment: the batcher's worker threads are not
traced (a segment's queue wait and batch generation are one "dragoman.generate" span per text,
around the await of its segments' futures).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from .errors import ConfigError

__all__ = [
    "ENV_ENDPOINT",
    "endpoint_from",
    "endpoint_problem",
    "enabled",
    "install",
    "setup",
    "shutdown",
    "span",
    "server_span",
]

ENV_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACER_NAME = "dragoman_server"

_tracer = None  # an SDK Tracer while tracing is on
_provider = None
_NULL = contextlib.nullcontext()


def endpoint_problem(value: str) -> str | None:
    """None when `value` is empty (off) or an http(s)://host[:port] URL; else what is allowed."""
    if not value:
        return None
    allowed = "empty (off) or an OTLP/gRPC collector URL such as http://localhost:4317"
    try:
        url = urlsplit(value)
        url.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        return allowed
    if url.scheme not in ("http", "https") or not url.hostname or any(c.isspace() for c in value):
        return allowed
    return None


def endpoint_from(settings, env: Mapping[str, str] | None = None) -> tuple[str, str]:
    """The OTLP endpoint (empty: off) and where it came from; ConfigError (one line) when the
    standard env var holds something that is not a URL (the setting is checked when read)."""
    if settings.otel_exporter_otlp_endpoint:
        return settings.otel_exporter_otlp_endpoint, "otel_exporter_otlp_endpoint"
    env = os.environ if env is None else env
    value = env.get(ENV_ENDPOINT, "").strip()
    problem = endpoint_problem(value)
    if problem:
        raise ConfigError(f"{ENV_ENDPOINT}: invalid value {value!r}; allowed: {problem}")
    return value, ENV_ENDPOINT


def enabled() -> bool:
    return _tracer is not None


def install(provider) -> None:
    """Trace into `provider` (an SDK TracerProvider); None turns tracing off again. Tests use it
    with an InMemorySpanExporter."""
    global _tracer, _provider
    _provider = provider
    _tracer = None if provider is None else provider.get_tracer(TRACER_NAME)


def setup(settings, env: Mapping[str, str] | None = None) -> bool:
    """Install an OTLP-exporting provider when an endpoint is configured; True when tracing is on."""
    endpoint, _ = endpoint_from(settings, env)
    if not endpoint:
        return False
    # Imported only when on: the SDK and exporter cost nothing to a server that does not trace.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: settings.otel_service_name}))
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=endpoint, insecure=urlsplit(endpoint).scheme == "http")
        )
    )
    install(provider)
    return True


def shutdown() -> None:
    """Flush and stop the installed provider (at server exit)."""
    provider = _provider
    install(None)
    if provider is not None:
        provider.shutdown()


def span(name: str, **attributes: Any):
    """`with span(...):` a child span of the current one (a null context when tracing is off)."""
    if _tracer is None:
        return _NULL
    return _tracer.start_as_current_span(name, attributes=attributes)


def start_span(name: str, **attributes: Any):
    """A child span of the current one that is not made current (for async generators, whose
    context changes between yields); None when off. End it with `end_span`."""
    if _tracer is None:
        return None
    return _tracer.start_span(name, attributes=attributes)


def end_span(span_, **attributes: Any) -> None:
    if span_ is not None:
        span_.set_attributes(attributes)
        span_.end()


class ServerSpan:
    """A call's server span, its parent taken from incoming W3C trace context, made current
    until `end()`."""

    def __init__(self, name: str, carrier: Mapping[str, str], attributes: Mapping[str, Any]):
        from opentelemetry import context, propagate, trace

        self._context = context
        parent = propagate.extract(carrier)
        self.span = _tracer.start_span(
            name, context=parent, kind=trace.SpanKind.SERVER, attributes=attributes
        )
        self._token = context.attach(trace.set_span_in_context(self.span, parent))

    def end(self, status: str, reason: str | None, **attributes: Any) -> None:
        from opentelemetry.trace import Status, StatusCode

        with contextlib.suppress(ValueError):
            self._context.detach(self._token)
        self.span.set_attribute("dragoman.status", status)
        if reason:
            self.span.set_attribute("dragoman.reason", reason)
        self.span.set_attributes(attributes)
        if status != "OK":
            self.span.set_status(Status(StatusCode.ERROR, reason or status))
        self.span.end()


def server_span(
    name: str, carrier: Iterator[tuple[str, Any]] | Mapping[str, str], **attributes: Any
) -> ServerSpan | None:
    """A `ServerSpan` for one call, or None when tracing is off."""
    if _tracer is None:
        return None
    if not isinstance(carrier, Mapping):
        carrier = {k: v for k, v in carrier if isinstance(v, str)}
    return ServerSpan(name, carrier, attributes)
