"""The HTTP face end to end: real servers on ephemeral 127.0.0.1 ports (gRPC and HTTP in one
process), the copy model (output == input), plain `http.client` requests as `curl` sends them."""

import http.client
import json
import logging
import ssl
import threading
import time

import grpc
import pytest

import dragoman
from conftest import copy_model, make_config, needs_copy_model
from dragoman.v1 import dragoman_pb2
from dragoman_server.http.openapi import openapi_document
from dragoman_server.http.transcoding import bindings
from dragoman_server.server import BackgroundServer

pytestmark = [needs_copy_model, pytest.mark.timeout(120)]

MODEL = "copy-pt-en"
KEY = "http-test-key"
QUOTA_KEY = "http-quota-key"
ARTICLE = (
    "Lisboa acorda cedo.  O elétrico 28 sobe a colina,\n"
    "e os turistas já esperam na paragem.\n\n"
    "\tNo Chiado, as livrarias abrem às nove; a mais antiga do mundo, dizem, está aqui.\n\n\n"
    "Ao fim da tarde, o rio fica dourado. — «Volte sempre», diz o empregado.\n"
)


class Reply:
    def __init__(self, status: int, headers, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def error(self) -> dict:
        return self.json()["error"]

    def detail(self, type_name: str) -> dict:
        (found,) = [
            d for d in self.error()["details"] if d["@type"].endswith("google.rpc." + type_name)
        ]
        return found


def request(port, method, path, body=None, headers=None, *, timeout=30, context=None) -> Reply:
    if isinstance(body, dict | list):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode("utf-8")
    if context is None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    else:
        connection = http.client.HTTPSConnection(
            "localhost", port, timeout=timeout, context=context
        )
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return Reply(response.status, response.headers, response.read())
    finally:
        connection.close()


def post(port, path, body, **headers) -> Reply:
    return request(port, "POST", path, body, {"Content-Type": "application/json", **headers})


@pytest.fixture(scope="module")
def web():
    config = make_config(
        [copy_model(MODEL, "pt-en"), copy_model("copy-en-de", "en-de")],
        http=True,
        http_port=0,
        max_batch_size=4,
        max_message_bytes=64 * 1024,
    )
    with BackgroundServer(config) as running:
        assert running.ready
        yield running


def _batcher(server):
    return server.server.registry.entries[MODEL].batcher


def _settled(server, seconds: float = 10) -> bool:
    """Wait until the model's queue is empty (abandoned segments are dropped as the batcher
    reaches them); True when it is."""
    batcher = _batcher(server)
    deadline = time.monotonic() + seconds
    while batcher.queue_depth and time.monotonic() < deadline:
        time.sleep(0.05)
    return batcher.queue_depth == 0


# -- routes and the OpenAPI document --------------------------------------------------------


def test_every_rpc_has_an_http_rule_and_openapi_matches_the_mounted_routes(web):
    service = dragoman_pb2.DESCRIPTOR.services_by_name["Dragoman"]
    rules = {(b.verb, b.path): b.method.name for b in bindings()}
    assert sorted(rules.values()) == sorted(m.name for m in service.methods)
    assert rules == {
        ("POST", "/v1/translate"): "Translate",
        ("POST", "/v1/translate:stream"): "TranslateStream",
        ("POST", "/v1/summarize"): "Summarize",
        ("POST", "/v1/summarize:stream"): "SummarizeStream",
        ("POST", "/v1/detect"): "DetectLanguage",
        ("GET", "/v1/models"): "ListModels",
    }
    mounted = {
        (r.method, r.resource.canonical)
        for r in web.server.http.app.router.routes()
        if r.method != "HEAD"
    }
    served = request(web.http_port, "GET", "/openapi.json")
    assert served.status == 200
    document = served.json()
    assert document == openapi_document()
    from openapi_spec_validator import validate

    validate(document)  # a valid OpenAPI 3.0 document (raises otherwise)
    documented = {(verb.upper(), path) for path, ops in document["paths"].items() for verb in ops}
    # Every documented operation is mounted, and every transcoded RPC is documented.
    assert documented <= mounted
    assert set(rules) | {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/openapi.json")} == (
        documented
    )
    schemas = document["components"]["schemas"]
    for verb, path in rules:
        operation = document["paths"][path][verb.lower()]
        if verb == "POST":
            ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref.rsplit("/", 1)[-1] in schemas
    # field_behavior REQUIRED becomes `required`; names are the JSON names.
    assert schemas["TranslateRequest"]["required"] == ["texts", "targetLanguage"]
    assert schemas["DetectLanguageRequest"]["required"] == ["text"]
    assert "sourceLanguage" in schemas["TranslateRequest"]["properties"]
    assert schemas["ModelState"]["enum"][2] == "MODEL_STATE_READY"
    # Descriptions are the proto's comments.
    assert schemas["TranslateRequest"]["description"] == "A request to translate one or more texts."
    target = schemas["TranslateRequest"]["properties"]["targetLanguage"]
    assert target["description"] == "Required. The language to translate into."
    operation = document["paths"]["/v1/translate"]["post"]
    assert operation["summary"].startswith("Translates many texts in one call")


def test_health_and_readiness(web):
    for path in ("/healthz", "/readyz"):
        reply = request(web.http_port, "GET", path)
        assert reply.status == 200
        assert reply.json() == {
            "status": "SERVING",
            "models": {MODEL: "ready", "copy-en-de": "ready"},
        }


def test_readiness_is_503_when_no_model_serves(tmp_path):
    config = make_config(
        [
            {
                "name": "gone",
                "task": "translation",
                "source": str(tmp_path / "nothing"),
                "languages": ["pt-en"],
            }
        ],
        http=True,
        http_port=0,
    )
    with BackgroundServer(config, ready_timeout=60) as running:
        assert not running.ready
        assert request(running.http_port, "GET", "/readyz").status == 503
        assert request(running.http_port, "GET", "/healthz").status == 200
        with dragoman.Client(running.address) as client:
            assert client.health() == "NOT_SERVING"


# -- the RPCs -------------------------------------------------------------------------------


def test_translate_an_article_exactly(web):
    body = {"texts": [ARTICLE, "Olá."], "targetLanguage": "en", "source_language": "pt"}
    reply = post(web.http_port, "/v1/translate", body)
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"].startswith("application/json")
    first, second = reply.json()["translations"]
    assert first["text"] == ARTICLE and second["text"] == "Olá."
    assert first["models"] == [MODEL] and first["sourceLanguage"] == "pt"
    assert first["pivoted"] is False and first["route"][0]["targetLanguage"] == "en"
    # The same call over gRPC gives the same message.
    with dragoman.Client(web.address) as client:
        [over_grpc] = client.translate(ARTICLE, to="en", source="pt")
    assert over_grpc.text == first["text"]


def test_translate_with_pivot_and_glossary(web):
    body = {
        "texts": ["O Chiado fica em Lisboa."],
        "targetLanguage": "de",
        "sourceLanguage": "pt",
        "glossary": [{"source": "Chiado", "target": ""}],
    }
    reply = post(web.http_port, "/v1/translate", body)
    assert reply.status == 200, reply.body
    [result] = reply.json()["translations"]
    assert result["text"] == "O Chiado fica em Lisboa."
    assert result["pivoted"] is True and result["models"] == [MODEL, "copy-en-de"]


def _stream_lines(reply: Reply) -> list[dict]:
    assert reply.headers["Content-Type"] == "application/x-ndjson"
    assert reply.body.endswith(b"\n")
    return [json.loads(line) for line in reply.body.decode("utf-8").splitlines()]


def test_stream_as_ndjson_concatenates_to_the_article(web):
    body = {"texts": [ARTICLE, "Bom dia."], "targetLanguage": "en", "sourceLanguage": "pt"}
    reply = post(web.http_port, "/v1/translate:stream", body)
    assert reply.status == 200
    items = _stream_lines(reply)
    for index, text in enumerate((ARTICLE, "Bom dia.")):
        mine = [i for i in items if i["textIndex"] == index]
        assert [i["paragraphIndex"] for i in mine] == list(range(len(mine)))
        assert "".join(i["text"] for i in mine) == text
        assert [i["last"] for i in mine] == [False] * (len(mine) - 1) + [True]
    assert len([i for i in items if i["textIndex"] == 0]) > 2  # paragraph by paragraph


def test_stream_as_server_sent_events(web):
    # A text that looks like SSE framing and ndjson items stays inside its JSON strings.
    tricky = 'Linha um.\n\nevent: error\ndata: {"error": 1}\n\n{"textIndex": 9}\r\n\nFim.'
    body = {"texts": [ARTICLE, tricky], "targetLanguage": "en", "sourceLanguage": "pt"}
    reply = post(web.http_port, "/v1/translate:stream", body, Accept="text/event-stream")
    assert reply.status == 200
    assert reply.headers["Content-Type"] == "text/event-stream"
    events = reply.body.decode("utf-8").split("\n\n")
    assert events[-1] == ""
    data = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert all(e.startswith("data: {") for e in events[:-1])
    for index, text in enumerate((ARTICLE, tricky)):
        assert "".join(d["text"] for d in data if d["textIndex"] == index) == text


def test_detect_and_models(web):
    reply = post(web.http_port, "/v1/detect", {"text": "Olá, tudo bem? O tempo está ótimo hoje."})
    assert reply.status == 200
    assert reply.json()["languages"][0]["language"] == "pt"
    reply = request(web.http_port, "GET", "/v1/models")
    assert reply.status == 200
    models = {m["name"]: m for m in reply.json()["models"]}
    assert models[MODEL]["state"] == "MODEL_STATE_READY"
    assert models[MODEL]["task"] == "TASK_TRANSLATION"


def test_summarize_without_a_summarizer_is_a_400_naming_the_language(web):
    reply = post(web.http_port, "/v1/summarize", {"text": "Um texto.", "sourceLanguage": "pt"})
    assert reply.status == 400
    assert reply.error()["status"] == "INVALID_ARGUMENT"
    assert "summarisation" in reply.error()["message"]


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason", "field"),
    [
        ({"texts": ["a"], "targetLanguage": "en", "textz": 1}, "UNKNOWN_FIELD", "textz"),
        (
            {"texts": ["a"], "targetLanguage": "en", "glossary": [{"sourc": "x"}]},
            "UNKNOWN_FIELD",
            "glossary[0].sourc",
        ),
        ({"texts": "a", "targetLanguage": "en"}, "REQUEST_UNDECODABLE", "texts"),
        ({"texts": [""], "targetLanguage": "en"}, "TEXT_EMPTY", "texts[0]"),
        ({"texts": []}, "TEXT_MISSING", "texts"),
        ('{"texts": ["a"], "texts": ["b"]}', "REQUEST_UNDECODABLE", ""),
        ("not json", "REQUEST_UNDECODABLE", ""),
        ("[1, 2]", "REQUEST_UNDECODABLE", ""),
        (b"\xff\xfe", "REQUEST_UNDECODABLE", ""),
    ],
)
def test_bad_requests_are_400_with_reason_and_field(web, body, reason, field):
    for path in ("/v1/translate", "/v1/translate:stream"):
        reply = post(web.http_port, path, body)
        assert reply.status == 400, reply.body
        error = reply.error()
        assert error["code"] == 400 and error["status"] == "INVALID_ARGUMENT"
        info = reply.detail("ErrorInfo")
        assert info["reason"] == reason and info["domain"] == "dragoman.v1"
        violations = reply.detail("BadRequest")["fieldViolations"]
        assert violations[0].get("field", "") == field
        if field:
            assert field in error["message"]


def test_unknown_language_pair_is_400_and_unknown_route_404_wrong_method_405(web):
    reply = post(
        web.http_port,
        "/v1/translate",
        {"texts": ["a"], "targetLanguage": "ja", "sourceLanguage": "pt"},
    )
    assert reply.status == 400 and reply.error()["status"] == "INVALID_ARGUMENT"
    reply = request(web.http_port, "GET", "/v2/nothing")
    assert reply.status == 404 and reply.error()["status"] == "NOT_FOUND"
    reply = request(web.http_port, "GET", "/v1/translate")
    assert reply.status == 405 and reply.error()["code"] == 405


def test_query_parameters_of_a_bodiless_method_are_checked(web):
    reply = request(web.http_port, "GET", "/v1/models?verbose=1")
    assert reply.status == 400
    assert reply.detail("ErrorInfo")["reason"] == "UNKNOWN_FIELD"
    assert "verbose" in reply.error()["message"]


def test_message_too_large(web):
    big = {"texts": ["a" * 70_000], "targetLanguage": "en"}
    reply = post(web.http_port, "/v1/translate", big)
    assert reply.status == 400
    assert reply.detail("ErrorInfo")["reason"] == "MESSAGE_TOO_LARGE"


def test_request_id_is_echoed_on_answers_errors_and_streams(web):
    ok = post(
        web.http_port,
        "/v1/translate",
        {"texts": ["Olá."], "targetLanguage": "en", "sourceLanguage": "pt"},
        **{"X-Request-Id": "req-42"},
    )
    assert ok.headers["x-request-id"] == "req-42"
    bad = post(web.http_port, "/v1/translate", {"texts": []}, **{"X-Request-Id": "req-43"})
    assert bad.headers["x-request-id"] == "req-43"
    stream = post(
        web.http_port,
        "/v1/translate:stream",
        {"texts": ["Olá."], "targetLanguage": "en", "sourceLanguage": "pt"},
        **{"X-Request-Id": "req-44"},
    )
    assert stream.headers["x-request-id"] == "req-44"
    unsafe = post(web.http_port, "/v1/detect", {"text": "Olá."}, **{"X-Request-Id": "a b;<c>"})
    assert unsafe.headers["x-request-id"] == "abc"  # cleaned as over gRPC
    fresh = request(web.http_port, "GET", "/v1/models")
    assert len(fresh.headers["x-request-id"]) == 32


def test_metrics_and_access_log_per_route(web, caplog):
    with caplog.at_level(logging.INFO, logger="dragoman_server.access"):
        post(web.http_port, "/v1/detect", {"text": "Bom dia a todos."}, **{"X-Request-Id": "m-1"})
        post(web.http_port, "/v1/detect", {"text": ""}, **{"X-Request-Id": "m-2"})
    metrics = web.server.metrics.text()
    assert 'dragoman_requests_total{code="OK",method="POST /v1/detect"}' in metrics
    assert (
        'dragoman_request_errors_total{code="INVALID_ARGUMENT",method="POST /v1/detect",'
        'reason="TEXT_EMPTY"}' in metrics
    )
    lines = {r.request_id: r for r in caplog.records if hasattr(r, "request_id")}
    assert lines["m-1"].status == "OK" and lines["m-1"].method == "POST /v1/detect"
    assert lines["m-2"].status == "INVALID_ARGUMENT" and lines["m-2"].reason == "TEXT_EMPTY"
    assert lines["m-1"].peer.startswith("ipv4:127.0.0.1:")


# -- deadlines and disconnects --------------------------------------------------------------


def article(paragraphs: int, topic: str) -> str:
    # Each test has its own topic: cached paragraphs would never be queued, so never dropped.
    return "\n\n".join(
        f"Parágrafo {i}: o governo anunciou hoje {topic} para a região {i}."
        for i in range(paragraphs)
    )


def test_deadline_header_abandons_the_work(web):
    batcher = _batcher(web)
    assert _settled(web)
    before = batcher.stats.dropped
    body = {
        "texts": [article(300, "um prazo curto")],
        "targetLanguage": "en",
        "sourceLanguage": "pt",
    }
    started = time.monotonic()
    reply = post(web.http_port, "/v1/translate", body, **{"grpc-timeout": "500m"})
    assert time.monotonic() - started < 2.5
    assert reply.status == 504, reply.body
    assert reply.error()["status"] == "DEADLINE_EXCEEDED"
    time.sleep(0.3)
    assert batcher.stats.dropped - before > 100, batcher.stats
    assert _settled(web)
    bad = post(web.http_port, "/v1/translate", body, **{"X-Server-Timeout": "soon"})
    assert bad.status == 400 and bad.detail("ErrorInfo")["reason"] == "DEADLINE_MALFORMED"


@pytest.mark.parametrize("accept", ["application/x-ndjson", "text/event-stream"])
def test_a_deadline_during_a_stream_ends_it_with_an_error_item(web, accept):
    """The headers (200) are out when the deadline passes: the error is the stream's last item."""
    topic = "um fim abrupto " + accept.split("/")[1]
    body = {"texts": [article(300, topic)], "targetLanguage": "en", "sourceLanguage": "pt"}
    reply = post(
        web.http_port, "/v1/translate:stream", body, Accept=accept, **{"grpc-timeout": "3S"}
    )
    assert reply.status == 200
    text = reply.body.decode("utf-8")
    if accept == "text/event-stream":
        events = text.split("\n\n")[:-1]
        *items, last = events
        assert last.startswith("event: error\ndata: ")
        error = json.loads(last.split("data: ", 1)[1])["error"]
        items = [json.loads(e.removeprefix("data: ")) for e in items]
    else:
        *items, error = [json.loads(line) for line in text.splitlines()]
        error = error["error"]
    assert items and items[0]["text"].startswith("Parágrafo 0")
    assert not items[-1]["last"]
    assert error["code"] == 504 and error["status"] == "DEADLINE_EXCEEDED"
    assert _settled(web), "the abandoned stream's segments are still queued"
    metrics = web.server.metrics.text()
    assert (
        'dragoman_requests_total{code="DEADLINE_EXCEEDED",method="POST /v1/translate:stream"}'
        in metrics
    )


def test_a_client_that_disconnects_cancels_its_work(web):
    batcher = _batcher(web)
    assert _settled(web)  # no other test's segments still being dropped
    before = batcher.stats.dropped
    body = json.dumps(
        {"texts": [article(200, "um novo plano")], "targetLanguage": "en", "sourceLanguage": "pt"}
    )
    connection = http.client.HTTPConnection("127.0.0.1", web.http_port, timeout=30)
    connection.request("POST", "/v1/translate:stream", body=body)
    response = connection.getresponse()
    first = json.loads(response.readline())
    assert first["text"].startswith("Parágrafo 0")
    connection.sock.shutdown(2)
    connection.close()
    deadline = time.monotonic() + 10
    while batcher.stats.dropped - before < 150 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert batcher.stats.dropped - before > 150, batcher.stats
    # ... and the call is counted as cancelled (499), not as an error of ours.
    cancelled = 'dragoman_requests_total{code="CANCELLED",method="POST /v1/translate:stream"}'
    while cancelled not in web.server.metrics.text() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert cancelled in web.server.metrics.text()
    reply = post(
        web.http_port,
        "/v1/translate",
        {"texts": ["Bom dia."], "targetLanguage": "en", "sourceLanguage": "pt"},
    )
    assert reply.json()["translations"][0]["text"] == "Bom dia."


def test_a_unary_caller_that_disconnects_cancels_its_work(web):
    """No write would fail here (nothing is written before the end): only the runner's
    handler cancellation stops the work."""
    batcher = _batcher(web)
    assert _settled(web)  # no other test's segments still being dropped
    before = batcher.stats.dropped
    body = json.dumps(
        {"texts": [article(200, "uma chamada")], "targetLanguage": "en", "sourceLanguage": "pt"}
    )
    connection = http.client.HTTPConnection("127.0.0.1", web.http_port, timeout=30)
    connection.request("POST", "/v1/translate", body=body)
    time.sleep(0.5)  # queued, a few batches done
    connection.sock.shutdown(2)
    connection.close()
    deadline = time.monotonic() + 10
    while batcher.stats.dropped - before < 150 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert batcher.stats.dropped - before > 150, batcher.stats
    assert _settled(web)


# -- admission: keys, quotas, concurrency ---------------------------------------------------


@pytest.fixture(scope="module")
def guarded():
    config = make_config(
        [copy_model(MODEL, "pt-en")],
        http=True,
        http_port=0,
        api_keys=f"{KEY},{QUOTA_KEY}",
        quota_requests_per_minute=3,
        max_batch_size=4,
    )
    with BackgroundServer(config) as running:
        assert running.ready
        yield running


TRANSLATE = {"texts": ["Olá."], "targetLanguage": "en", "sourceLanguage": "pt"}


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "API_KEY_MISSING"),
        ("Bearer wrong", "API_KEY_INVALID"),
        ("Basic abc", "API_KEY_MALFORMED"),
    ],
)
def test_api_key_required(guarded, authorization, reason):
    headers = {} if authorization is None else {"Authorization": authorization}
    reply = post(guarded.http_port, "/v1/translate", TRANSLATE, **headers)
    assert reply.status == 401
    assert reply.error()["status"] == "UNAUTHENTICATED"
    assert reply.detail("ErrorInfo")["reason"] == reason
    assert "wrong" not in reply.body.decode()


def test_valid_key_works_and_probes_stay_open(guarded):
    reply = post(guarded.http_port, "/v1/translate", TRANSLATE, Authorization=f"bearer {KEY}")
    assert reply.status == 200 and reply.json()["translations"][0]["text"] == "Olá."
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert request(guarded.http_port, "GET", path).status == 200


def test_quota_429_with_retry_after_charged_after_validation(guarded):
    auth = {"Authorization": f"Bearer {QUOTA_KEY}"}
    assert post(guarded.http_port, "/v1/translate", TRANSLATE, **auth).status == 200
    # An invalid request costs nothing.
    assert post(guarded.http_port, "/v1/translate", {"texts": []}, **auth).status == 400
    assert post(guarded.http_port, "/v1/translate", TRANSLATE, **auth).status == 200
    assert post(guarded.http_port, "/v1/detect", {"text": "Bom dia."}, **auth).status == 200
    reply = post(guarded.http_port, "/v1/translate", TRANSLATE, **auth)
    assert reply.status == 429
    assert reply.error()["status"] == "RESOURCE_EXHAUSTED"
    assert reply.detail("ErrorInfo")["reason"] == "QUOTA_EXCEEDED"
    assert 10 < int(reply.headers["Retry-After"]) <= 20  # 3 a minute: the next one in ~20 s
    assert reply.detail("RetryInfo")["retryDelay"].endswith("s")
    assert reply.detail("QuotaFailure")["violations"][0]["subject"].startswith("key:")
    # gRPC and HTTP share the one bucket of the key.
    with dragoman.Client(guarded.address, api_key=QUOTA_KEY, retries=0) as client:
        with pytest.raises(dragoman.DragomanError) as caught:
            client.translate("Olá.", to="en", source="pt")
    assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_concurrency_limit_is_shared_with_grpc():
    config = make_config(
        [copy_model(MODEL, "pt-en")],
        http=True,
        http_port=0,
        max_concurrent_requests=1,
        max_batch_size=2,
    )
    with BackgroundServer(config) as running:
        body = json.dumps(
            {"texts": [article(120, "uma fila")], "targetLanguage": "en", "sourceLanguage": "pt"}
        )
        connection = http.client.HTTPConnection("127.0.0.1", running.http_port, timeout=30)
        connection.request("POST", "/v1/translate:stream", body=body)
        response = connection.getresponse()
        response.readline()  # the stream holds the one slot
        try:
            reply = post(running.http_port, "/v1/detect", {"text": "Bom dia."})
            assert reply.status == 429
            assert reply.detail("ErrorInfo")["reason"] == "TOO_MANY_REQUESTS"
            assert reply.headers["Retry-After"] == "1"
            with dragoman.Client(running.address, retries=0) as client:
                with pytest.raises(dragoman.DragomanError) as caught:
                    client.detect("Bom dia.")
            assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        finally:
            connection.close()
        # The caller that went away gives its slot back.
        deadline = time.monotonic() + 10
        while True:
            reply = post(running.http_port, "/v1/detect", {"text": "Bom dia."})
            if reply.status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert reply.status == 200, reply.body
        assert running.server.admission.concurrency.active == 0


def test_request_form_reads_urlencoded_and_multipart_bodies_the_middleware_read():
    """For the LibreTranslate face: forms from the body already read by the middleware."""
    import asyncio

    from aiohttp import web as aioweb

    from dragoman_server.admission import Admission
    from dragoman_server.http.app import HealthView, HttpContext
    from dragoman_server.http.middleware import (
        CONTEXT_KEY,
        dragoman_middleware,
        endpoint,
        on_response_prepare,
        request_form,
    )
    from dragoman_server.settings import ServerSettings

    @endpoint(name="form")
    async def echo(request):
        form = await request_form(request)
        return aioweb.json_response(
            {k: v if isinstance(v, str) else f"<{len(v)} bytes>" for k, v in form.items()}
        )

    async def run():
        app = aioweb.Application(middlewares=[dragoman_middleware])
        app[CONTEXT_KEY] = HttpContext(
            None, Admission(), None, ServerSettings(), HealthView(lambda: True, lambda: False, None)
        )
        app.on_response_prepare.append(on_response_prepare)
        app.router.add_post("/form", echo)
        runner = aioweb.AppRunner(app)
        await runner.setup()
        site = aioweb.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            return await asyncio.to_thread(_post_forms, port)
        finally:
            await runner.cleanup()

    urlencoded, multipart = asyncio.run(run())
    assert urlencoded == {"q": "Olá mundo & co", "source": "pt", "api_key": ""}
    assert multipart == {"q": "Olá\r\nmundo", "target": "en", "file": "<5 bytes>"}


def _post_forms(port):
    import urllib.parse

    form = urllib.parse.urlencode({"q": "Olá mundo & co", "source": "pt", "api_key": ""})
    first = request(
        port, "POST", "/form", form, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    boundary = "XyZ"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="q"\r\n\r\nOlá\r\nmundo\r\n',
        f'--{boundary}\r\nContent-Disposition: form-data; name="target"\r\n\r\nen\r\n',
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n'
        "Content-Type: text/plain\r\n\r\nhello\r\n",
        f"--{boundary}--\r\n",
    ]
    second = request(
        port,
        "POST",
        "/form",
        "".join(parts),
        {"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert first.status == 200 and second.status == 200, (first.body, second.body)
    return first.json(), second.json()


# -- TLS and shutdown -----------------------------------------------------------------------


def test_https_with_the_same_certificate(tmp_path):
    from test_auth_tls import _certificates

    certs = _certificates(tmp_path)
    key, cert = certs["server"]
    config = make_config(
        [copy_model(MODEL, "pt-en")], http=True, http_port=0, tls_cert=str(cert), tls_key=str(key)
    )
    with BackgroundServer(config) as running:
        context = ssl.create_default_context(cafile=str(certs["ca"]))
        reply = request(running.http_port, "POST", "/v1/translate", TRANSLATE, context=context)
        assert reply.status == 200 and reply.json()["translations"][0]["text"] == "Olá."
        with pytest.raises(ssl.SSLError):
            request(running.http_port, "GET", "/healthz", context=ssl.create_default_context())


def test_https_with_client_certificates_when_tls_client_ca(tmp_path):
    from test_auth_tls import _certificates

    certs = _certificates(tmp_path)
    key, cert = certs["server"]
    config = make_config(
        [copy_model(MODEL, "pt-en")],
        http=True,
        http_port=0,
        tls_cert=str(cert),
        tls_key=str(key),
        tls_client_ca=str(certs["ca"]),
    )
    with BackgroundServer(config) as running:
        with_cert = ssl.create_default_context(cafile=str(certs["ca"]))
        client_key, client_cert = certs["client"]
        with_cert.load_cert_chain(str(client_cert), str(client_key))
        assert request(running.http_port, "GET", "/v1/models", context=with_cert).status == 200
        stranger = ssl.create_default_context(cafile=str(certs["ca"]))
        stranger_key, stranger_cert = certs["stranger"]
        stranger.load_cert_chain(str(stranger_cert), str(stranger_key))
        for refused in (ssl.create_default_context(cafile=str(certs["ca"])), stranger):
            with pytest.raises((ssl.SSLError, ConnectionError)):
                request(running.http_port, "GET", "/v1/models", context=refused)


def test_graceful_shutdown_lets_the_call_in_flight_finish():
    config = make_config([copy_model(MODEL, "pt-en")], http=True, http_port=0, max_batch_size=2)
    running = BackgroundServer(config)
    body = {"texts": [article(40, "o fim")], "targetLanguage": "en", "sourceLanguage": "pt"}
    replies = []
    caller = threading.Thread(
        target=lambda: replies.append(post(running.http_port, "/v1/translate", body))
    )
    caller.start()
    time.sleep(0.3)
    running.stop(grace=30)
    caller.join(30)
    assert replies and replies[0].status == 200
    assert replies[0].json()["translations"][0]["text"] == body["texts"][0]
    with pytest.raises(OSError):
        request(running.http_port, "GET", "/healthz", timeout=2)


def test_http_settings_are_validated():
    from dragoman_server.errors import ConfigError

    with pytest.raises(ConfigError, match="http_port"):
        make_config([copy_model(MODEL, "pt-en")], http=True, http_port=70000)
    with pytest.raises(ConfigError, match="http_host"):
        make_config([copy_model(MODEL, "pt-en")], http=True, http_host="two words")


def test_http_port_in_use_is_a_clear_error_and_off_means_no_listener():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = make_config([copy_model(MODEL, "pt-en")], http=True, http_port=port)
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port} for HTTP"):
            BackgroundServer(config)
    with BackgroundServer(make_config([copy_model(MODEL, "pt-en")])) as running:
        assert running.http_port is None and running.server.http is None


def _serve(tmp_path):
    """`dragoman serve --http` in a subprocess; (process, grpc address, http port, log lines)."""
    import os
    import re
    import subprocess
    import sys

    from conftest import COPY_MODEL

    config = tmp_path / "dragoman.toml"
    config.write_text(
        "[server]\nhost = '127.0.0.1'\nthreads = 2\nmax_batch_size = 2\n"
        f"[[models]]\nname = '{MODEL}'\ntask = 'translation'\nsource = {json.dumps(str(COPY_MODEL))}\n"
        "languages = ['pt-en']\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "dragoman_server.cli", "serve", "--config", str(config)]
        + ["--port", "0", "--http", "--http-port", "0", "--grace-period-s", "30"]
        + ["--log-format", "json"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    lines: list[str] = []
    port = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r"HTTP on http://127\.0\.0\.1:(\d+)", line)
        if match:
            port = int(match.group(1))
        if '"message": "serving"' in line:
            break
    assert port, "".join(lines)
    threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True).start()
    return process, port, lines


def test_sigterm_lets_http_calls_finish_and_a_second_signal_cuts_them(tmp_path):
    import signal

    process, port, lines = _serve(tmp_path)
    try:
        body = {"texts": [article(10, "a saída")], "targetLanguage": "en", "sourceLanguage": "pt"}
        replies: list = []

        def call():
            try:
                replies.append(post(port, "/v1/translate", body, timeout=60))
            except OSError as exc:  # cut by the second signal
                replies.append(exc)

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        caller.join(60)
        assert process.wait(60) == 0
        [reply] = replies
        assert not isinstance(reply, OSError), (reply, "".join(lines))
        assert reply.status == 200 and reply.json()["translations"][0]["text"] == body["texts"][0]

        # A second signal cancels what is left and exits at once.
        process, port, lines = _serve(tmp_path)
        replies.clear()
        body = {"texts": [article(300, "a pressa")], "targetLanguage": "en", "sourceLanguage": "pt"}
        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        caller.join(30)
        assert time.monotonic() - started < 10
        [cut] = replies
        assert isinstance(cut, OSError) or cut.status != 200
    finally:
        if process.poll() is None:
            process.kill()
