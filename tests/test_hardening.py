"""Deadlines and cancellation end to end, request limits, request ids, metrics and the access log.

One copy-model server per fixture (the copy model returns its input exactly), 127.0.0.1 only.
"""

import concurrent.futures
import logging
import re
import time
import urllib.request

import grpc
import pytest

import dragoman
from conftest import copy_model, make_config, needs_copy_model
from dragoman.v1 import dragoman_pb2 as pb
from dragoman.v1 import dragoman_pb2_grpc as pb_grpc
from dragoman_server.server import BackgroundServer

pytestmark = [needs_copy_model, pytest.mark.timeout(120)]

MODEL = "copy-pt-en"


def article(paragraphs: int, topic: str = "novas medidas") -> str:
    # Tests that count abandoned segments use their own topic: paragraphs another test already
    # translated would be answered from the translation cache, never queued, never dropped.
    return "\n\n".join(
        f"Parágrafo {i}: o governo anunciou hoje {topic} para a região {i}."
        for i in range(paragraphs)
    )


@pytest.fixture(scope="module")
def slow_server():
    """Small batches (4 segments): a 300-paragraph article needs ~75 batches, tens of seconds."""
    config = make_config([copy_model(MODEL, "pt-en")], max_batch_size=4, metrics_port=_free_port())
    with BackgroundServer(config) as running:
        assert running.ready
        yield running


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _batcher(server: BackgroundServer):
    return server.server.registry.entries[MODEL].batcher


def test_deadline_abandons_the_long_call_and_the_short_one_is_answered_at_once(slow_server):
    batcher = _batcher(slow_server)
    before = (batcher.stats.segments, batcher.stats.dropped)
    text = article(300)
    with dragoman.Client(slow_server.address, retries=0) as client:
        started = time.monotonic()
        with pytest.raises(dragoman.DragomanError) as caught:
            client.translate(text, to="en", source="pt", timeout=1.0)
        assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 2.5
        started = time.monotonic()
        [short] = client.translate("Olá, mundo.", to="en", source="pt", timeout=10)
        short_seconds = time.monotonic() - started
    assert short.text == "Olá, mundo."
    # At most the batch that was running when the deadline passed was ahead of it.
    assert short_seconds < 1.5, short_seconds
    time.sleep(0.3)
    generated = batcher.stats.segments - before[0]
    dropped = batcher.stats.dropped - before[1]
    # Most abandoned segments never reached the model (how many ran depends on machine speed).
    assert dropped > 100 and dropped > 2 * generated, batcher.stats
    assert batcher.queue_depth == 0
    # ... and the metrics endpoint says so too.
    body = _scrape(slow_server)
    assert f'dragoman_segments_dropped_total{{model="{MODEL}"}}' in body
    assert 'dragoman_requests_total{code="DEADLINE_EXCEEDED",method="Translate"}' in body


def test_client_cancel_of_a_stream_abandons_its_segments(slow_server):
    batcher = _batcher(slow_server)
    before = batcher.stats.dropped
    with dragoman.Client(slow_server.address, retries=0) as client:
        text = article(200, topic="um novo plano")
        stream = client.translate_stream(text, to="en", source="pt", timeout=30)
        first = next(iter(stream))
        assert first.text.startswith("Parágrafo 0")
        stream.close()
        [short] = client.translate("Bom dia.", to="en", source="pt", timeout=10)
    assert short.text == "Bom dia."
    time.sleep(0.3)
    assert batcher.stats.dropped - before > 150, batcher.stats


def _scrape(server: BackgroundServer) -> str:
    port = server.server.metrics.port
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return response.read().decode()


def test_metrics_endpoint(slow_server):
    with dragoman.Client(slow_server.address) as client:
        client.translate("Uma frase.", to="en", source="pt")
        with pytest.raises(dragoman.DragomanError):
            client.translate("Uma frase.", to="de", source="pt")
    body = _scrape(slow_server)
    for name in (
        'dragoman_requests_total{code="OK",method="Translate"}',
        'dragoman_requests_total{code="INVALID_ARGUMENT",method="Translate"}',
        "dragoman_request_seconds_bucket",
        f'dragoman_batch_size_count{{model="{MODEL}"}}',
        f'dragoman_queue_depth{{model="{MODEL}"}}',
        f'dragoman_input_tokens_total{{model="{MODEL}"}}',
        f'dragoman_output_tokens_total{{model="{MODEL}"}}',
        f'dragoman_model_load_seconds{{model="{MODEL}"}}',
        "dragoman_requests_in_flight",
        "dragoman_cache_hits_total",
        "dragoman_cache_misses_total",
        "dragoman_cache_hit_ratio",
        "dragoman_outputs_flagged_total",
    ):
        assert name in body, name

    def counter(name: str) -> float:
        text = _scrape(slow_server)
        return float(re.search(rf"^{name} (\S+)$", text, re.M).group(1))

    hits, misses = counter("dragoman_cache_hits_total"), counter("dragoman_cache_misses_total")
    with dragoman.Client(slow_server.address) as client:
        for _ in range(2):  # the second time, the segment comes from the cache
            client.translate("Uma frase que só este teste envia.", to="en", source="pt")
    assert counter("dragoman_cache_misses_total") == misses + 1
    assert counter("dragoman_cache_hits_total") == hits + 1


def test_request_id_is_echoed_and_logged(slow_server, caplog):
    stub = pb_grpc.DragomanStub(grpc.insecure_channel(slow_server.address))
    request = pb.TranslateRequest(texts=["Olá."], target_language="en", source_language="pt")
    with caplog.at_level(logging.INFO, logger="dragoman_server.access"):
        _, call = stub.Translate.with_call(request, metadata=[("x-request-id", "req-42")])
        assert ("x-request-id", "req-42") in call.trailing_metadata()
        _, call = stub.Translate.with_call(request)
        generated = dict(call.trailing_metadata())["x-request-id"]
        assert len(generated) == 32
        time.sleep(0.2)
    lines = [r for r in caplog.records if r.name == "dragoman_server.access"]
    ours = [r for r in lines if r.request_id == "req-42"]
    assert len(ours) == 1
    assert ours[0].method == "/dragoman.v1.Dragoman/Translate"
    assert ours[0].status == "OK" and ours[0].duration_ms >= 0
    assert any(r.request_id == generated for r in lines)


def test_json_log_line_has_the_call_fields():
    import json

    from dragoman_server.logs import JsonFormatter

    record = logging.LogRecord("dragoman_server.access", logging.INFO, "", 0, "x", (), None)
    record.request_id, record.method, record.status, record.duration_ms = "r1", "/m", "OK", 1.5
    entry = json.loads(JsonFormatter().format(record))
    assert entry["request_id"] == "r1" and entry["status"] == "OK" and entry["duration_ms"] == 1.5


# -- limits ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited_server():
    config = make_config(
        [copy_model(MODEL, "pt-en")],
        max_texts_per_request=3,
        max_chars_per_text=200,
        max_chars_per_request=300,
        max_message_bytes=4000,
        max_concurrent_requests=2,
        max_batch_size=2,
    )
    with BackgroundServer(config) as running:
        assert running.ready
        yield running


@pytest.mark.parametrize(
    "texts, needle",
    [
        (["Olá."] * 4, "texts"),
        (["a" * 201], "characters; the limit is 200"),
        (["a" * 150, "b" * 150, "c" * 10], "characters in one call; the limit is 300"),
    ],
    ids=["texts_per_request", "chars_per_text", "chars_per_request"],
)
def test_request_limits_are_invalid_argument(limited_server, texts, needle):
    with dragoman.Client(limited_server.address) as client:
        with pytest.raises(dragoman.DragomanError) as caught:
            client.translate(texts, to="en", source="pt")
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert needle in caught.value.message


def test_message_size_limit_is_invalid_argument_with_a_reason(limited_server):
    """Over max_message_bytes: refused by the admission layer (a reason, counted and logged)."""
    with dragoman.Client(limited_server.address, retries=0) as client:
        with pytest.raises(dragoman.DragomanError) as caught:
            client.translate("x" * 5000, to="en", source="pt")
        assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert caught.value.reason == "MESSAGE_TOO_LARGE"
        assert "max_message_bytes is 4000" in caught.value.message
        # Past twice the limit, grpc's own backstop refuses it before the server sees it.
        with pytest.raises(dragoman.DragomanError) as caught:
            client.translate("x" * 9000, to="en", source="pt")
        assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_concurrency_limit_is_resource_exhausted(limited_server):
    text = ". ".join(f"Frase número {i}" for i in range(12)) + "."
    with dragoman.Client(limited_server.address, retries=0) as client:

        def call(_):
            try:
                return client.translate(text, to="en", source="pt", timeout=60)[0].text
            except dragoman.DragomanError as exc:
                return exc

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(call, range(8)))
    refused = [a for a in answers if isinstance(a, dragoman.DragomanError)]
    assert all(a == text for a in answers if isinstance(a, str))
    assert refused, "8 concurrent calls with max_concurrent_requests=2: some must be refused"
    assert len(refused) < 8
    for exc in refused:
        assert exc.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "concurrent" in exc.message.lower()
