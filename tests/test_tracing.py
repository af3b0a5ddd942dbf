"""OpenTelemetry tracing (tracing.py) through the real server, model and client on 127.0.0.1."""

import asyncio
import http.client
import json
import os
import subprocess
import sys
import threading
from concurrent import futures

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from conftest import ROOT, copy_model, make_config, needs_copy_model
from dragoman import AsyncClient, Client, DragomanError
from dragoman_server import tracing
from dragoman_server.errors import ConfigError
from dragoman_server.server import BackgroundServer

pytestmark = needs_copy_model

TEXT = "O presidente falou ontem aos jornalistas em Lisboa sobre a economia do país."
STEPS = {"dragoman.detect", "dragoman.segment", "dragoman.generate", "dragoman.render"}


@pytest.fixture(scope="module")
def copy_server():
    config = make_config([copy_model("copy-pt-en", "pt-en")], http=True, http_port=0)
    with BackgroundServer(config) as server:
        yield server


@pytest.fixture
def exporter():
    """Tracing on, into memory; off again afterwards."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    tracing.install(provider)
    yield spans
    tracing.install(None)
    provider.shutdown()


def _client_tracer():
    """A tracer of the caller's own, in memory: its spans' context is what the client sends."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    return provider.get_tracer("test-caller"), spans


def test_translate_call_is_one_trace_with_its_steps(copy_server, exporter):
    tracer, caller_spans = _client_tracer()
    with Client(copy_server.address) as client, tracer.start_as_current_span("caller") as caller:
        [result] = client.translate(TEXT, "en", request_id="trace-me-1")
    assert result.text == TEXT and result.source_language_detected

    spans = exporter.get_finished_spans()
    [call] = [s for s in spans if s.kind == SpanKind.SERVER]
    assert call.name == "dragoman.v1.Dragoman/Translate"
    assert call.attributes["dragoman.request_id"] == "trace-me-1"
    assert call.attributes["dragoman.status"] == "OK"
    assert call.attributes["rpc.method"] == "Translate"
    # Propagation: the caller's span is the server span's parent, in the caller's trace.
    assert call.context.trace_id == caller.get_span_context().trace_id
    assert call.parent is not None and call.parent.span_id == caller.get_span_context().span_id
    steps = {s.name: s for s in spans if s is not call}
    assert set(steps) == STEPS
    for step in steps.values():
        assert step.context.trace_id == call.context.trace_id
        assert step.parent.span_id == call.context.span_id, step.name
        assert step.attributes["dragoman.field"] == "texts[0]"
    assert steps["dragoman.detect"].attributes["dragoman.language"] == "pt"
    assert steps["dragoman.segment"].attributes["dragoman.segments"] >= 1
    # Steps in order, inside the call.
    order = [steps[n] for n in ("dragoman.detect", "dragoman.segment", "dragoman.generate")]
    assert all(a.end_time <= b.start_time for a, b in zip(order, order[1:], strict=False))
    assert (
        call.start_time <= order[0].start_time
        and steps["dragoman.render"].end_time <= call.end_time
    )
    assert [s.name for s in caller_spans.get_finished_spans()] == ["caller"]


def test_spans_per_call_and_per_text_not_per_segment(copy_server, exporter):
    texts = [TEXT, " ".join([TEXT] * 6), "Bom dia.\n\nAté amanhã."]
    with Client(copy_server.address) as client:
        results = client.translate(texts, "en", source="pt")
    assert [r.text for r in results] == texts
    spans = exporter.get_finished_spans()
    names = sorted(s.name for s in spans)
    # A given source: no detection; one span per step and text, whatever the segment count.
    assert names == sorted(
        ["dragoman.v1.Dragoman/Translate"]
        + [n for n in STEPS if n != "dragoman.detect"] * len(texts)
    )
    assert len({s.context.trace_id for s in spans}) == 1


def test_stream_and_failed_calls_are_traced(copy_server, exporter):
    with Client(copy_server.address) as client:
        chunks = list(client.translate_stream(TEXT + "\n\n" + TEXT, "en", source="pt"))
        with pytest.raises(DragomanError):
            client.translate("", "en", source="pt", request_id="bad-call")
    assert "".join(c.text for c in chunks) == TEXT + "\n\n" + TEXT
    spans = exporter.get_finished_spans()
    calls = {s.name: s for s in spans if s.kind == SpanKind.SERVER}
    stream = calls["dragoman.v1.Dragoman/TranslateStream"]
    assert stream.attributes["dragoman.status"] == "OK"
    [generate] = [s for s in spans if s.name == "dragoman.generate"]
    assert generate.parent.span_id == stream.context.span_id
    failed = calls["dragoman.v1.Dragoman/Translate"]
    assert failed.attributes["dragoman.request_id"] == "bad-call"
    assert failed.attributes["dragoman.status"] == "INVALID_ARGUMENT"
    assert failed.attributes["dragoman.reason"] == "TEXT_EMPTY"
    assert not failed.status.is_ok


def test_off_by_default_exports_nothing(copy_server):
    assert not tracing.enabled()
    assert tracing.setup(copy_server.config.server, env={}) is False
    assert not tracing.enabled()
    tracer, caller_spans = _client_tracer()
    with Client(copy_server.address) as client, tracer.start_as_current_span("caller"):
        [result] = client.translate(TEXT, "en")
    assert result.text == TEXT
    # Only the caller's own span exists: the server made none (and no exporter is installed).
    assert [s.name for s in caller_spans.get_finished_spans()] == ["caller"]
    assert tracing.server_span("x", {}) is None and tracing.start_span("x") is None


class _Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """An in-process OTLP/gRPC trace receiver: keeps what it is sent."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()

    def Export(self, request, context):
        with self.lock:
            self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


def test_spans_go_over_otlp_to_the_configured_endpoint(copy_server):
    receiver = _Receiver()
    collector = grpc.server(futures.ThreadPoolExecutor(2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, collector)
    port = collector.add_insecure_port("127.0.0.1:0")
    collector.start()
    try:
        settings = make_config(
            [copy_model("copy-pt-en", "pt-en")],
            otel_exporter_otlp_endpoint=f"http://127.0.0.1:{port}",
            otel_service_name="dragoman-test",
        ).server
        assert tracing.setup(settings, env={})
        try:
            with Client(copy_server.address) as client:
                client.translate(TEXT, "en", request_id="over-otlp")
        finally:
            tracing.shutdown()  # flushes the batch
        assert not tracing.enabled()
    finally:
        collector.stop(None)
    resource_spans = [rs for r in receiver.requests for rs in r.resource_spans]
    services = {
        a.value.string_value
        for rs in resource_spans
        for a in rs.resource.attributes
        if a.key == "service.name"
    }
    assert services == {"dragoman-test"}
    names = {s.name for rs in resource_spans for ss in rs.scope_spans for s in ss.spans}
    assert names == STEPS | {"dragoman.v1.Dragoman/Translate"}


def test_standard_env_var_turns_tracing_on():
    settings = make_config([copy_model("copy-pt-en", "pt-en")]).server
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"}
    assert tracing.endpoint_from(settings, env) == (
        "http://127.0.0.1:4317",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    )
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_ENDPOINT"):
        tracing.endpoint_from(settings, {"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4317"})


@pytest.mark.parametrize(
    "name", ["DRAGOMAN_OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]
)
def test_bad_endpoint_is_one_line_and_exit_2(tmp_path, name):
    config = tmp_path / "config.toml"
    config.write_text(
        f'[[models]]\nname = "copy"\ntask = "translation"\nsource = "{ROOT.parent}/shared/models/copy-pt-en"\n'
        'languages = ["pt-en"]\n'
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "client"), str(ROOT / "service")]),
        name: "collector:4317",
    }
    run = subprocess.run(
        [sys.executable, "-m", "dragoman", "serve", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert run.returncode == 2, run.stderr
    assert run.stderr.count("\n") == 1 and name in run.stderr and "collector:4317" in run.stderr


def test_client_works_without_opentelemetry():
    code = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "from dragoman import _requests\n"
        "assert _requests._propagate is None and _requests._trace_context() == ()\n"
        "args = _requests.channel_settings('127.0.0.1:1', timeout=None, api_key='k', tls=False,"
        " root_certificates=None, private_key=None, certificate_chain=None, credentials=None,"
        " retries=0, options=None).call_args(None, 'r')\n"
        "assert args['metadata'] == (('authorization', 'Bearer k'), ('x-request-id', 'r'))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT / "client")}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr


def test_http_call_is_one_trace_with_its_steps(copy_server, exporter):
    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    connection = http.client.HTTPConnection("127.0.0.1", copy_server.http_port, timeout=30)
    try:
        connection.request(
            "POST",
            "/v1/translate",
            body=json.dumps({"texts": [TEXT], "targetLanguage": "en"}),
            headers={
                "Content-Type": "application/json",
                "traceparent": f"00-{trace_id}-{parent_id}-01",
                "x-request-id": "over-http",
            },
        )
        reply = connection.getresponse()
        body = json.loads(reply.read())
    finally:
        connection.close()
    assert reply.status == 200 and body["translations"][0]["text"] == TEXT
    spans = exporter.get_finished_spans()
    [call] = [s for s in spans if s.kind == SpanKind.SERVER]
    assert call.name == "POST /v1/translate"
    assert call.attributes["dragoman.request_id"] == "over-http"
    assert call.attributes["dragoman.status"] == "OK"
    assert f"{call.context.trace_id:032x}" == trace_id
    assert f"{call.parent.span_id:016x}" == parent_id
    steps = [s for s in spans if s is not call]
    assert {s.name for s in steps} == STEPS
    assert all(s.parent.span_id == call.context.span_id for s in steps)


def test_concurrent_async_calls_keep_their_own_traces(copy_server, exporter):
    tracer, _ = _client_tracer()

    async def caller_call(i: int):
        async with AsyncClient(copy_server.address) as client:
            with tracer.start_as_current_span(f"caller-{i}") as caller:
                await client.translate(TEXT, "en", request_id=f"concurrent-{i}")
                return caller.get_span_context().trace_id

    async def both():
        return await asyncio.gather(*(caller_call(i) for i in range(4)))

    trace_ids = asyncio.run(both())
    assert len(set(trace_ids)) == 4
    spans = exporter.get_finished_spans()
    calls = {s.attributes["dragoman.request_id"]: s for s in spans if s.kind == SpanKind.SERVER}
    assert len(calls) == 4
    for i, trace_id in enumerate(trace_ids):
        call = calls[f"concurrent-{i}"]
        assert call.context.trace_id == trace_id
        children = [s for s in spans if s.parent and s.parent.span_id == call.context.span_id]
        assert {s.name for s in children} == STEPS
        assert all(s.context.trace_id == trace_id for s in children)
