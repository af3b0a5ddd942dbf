"""The LibreTranslate-compatible API, through the real server (HTTP face on an ephemeral port)
with the copy model: whatever is translated comes back exactly as it was sent."""

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest

from conftest import copy_model, make_config, needs_copy_model
from dragoman_server.server import BackgroundServer

pytestmark = needs_copy_model

ARTICLES = Path(__file__).resolve().parent / "data" / "articles"
KEY = "lt-test-key"
QUOTA_KEY = "lt-quota-key"


def _config(**server):
    return make_config(
        [copy_model("copy-pt-en", "pt-en"), copy_model("copy-en-de", "en-de")],
        http=True,
        http_port=0,
        **server,
    )


@pytest.fixture(scope="module")
def open_server():
    with BackgroundServer(_config()) as running:
        assert running.ready
        yield running


@pytest.fixture(scope="module")
def keyed_server():
    with BackgroundServer(_config(api_keys=[KEY])) as running:
        assert running.ready
        yield running


class Reply:
    def __init__(self, status: int, headers, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def json(self):
        return json.loads(self.body)


def call(server, method: str, path: str, body: bytes | None = None, headers=None) -> Reply:
    request = urllib.request.Request(
        f"http://127.0.0.1:{server.http_port}{path}",
        data=body,
        method=method,
        headers=headers or {},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.headers, error.read())


def post_json(server, path: str, data, headers=None) -> Reply:
    body = data if isinstance(data, bytes) else json.dumps(data).encode("utf-8")
    return call(server, "POST", path, body, {"Content-Type": "application/json", **(headers or {})})


def post_form(server, path: str, fields: dict) -> Reply:
    body = urllib.parse.urlencode(fields).encode("utf-8")
    return call(server, "POST", path, body, {"Content-Type": "application/x-www-form-urlencoded"})


def post_multipart(server, path: str, fields: dict) -> Reply:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n'
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{value}\r\n"
        )
    body = ("".join(parts) + f"--{boundary}--\r\n").encode("utf-8")
    return call(
        server, "POST", path, body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )


def flask_bytes(data) -> bytes:
    """The bytes Flask's jsonify writes for `data` in LibreTranslate (JSON_AS_ASCII off)."""
    return (
        json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"
    ).encode("utf-8")


def assert_lt_error(reply: Reply, status: int, message: str | None = None) -> str:
    assert reply.status == status, reply.body
    assert reply.headers["Content-Type"].startswith("application/json")
    data = reply.json
    assert list(data) == ["error"] and isinstance(data["error"], str), data
    if message is not None:
        assert data["error"] == message
    return data["error"]


# -- /translate ---------------------------------------------------------------------------------


def test_translate_simple_example_is_byte_compatible(open_server):
    # LibreTranslate's documented "Simple Translation" example, on the pair we serve.
    reply = post_json(open_server, "/translate", {"q": "Olá!", "source": "pt", "target": "en"})
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.body == flask_bytes({"translatedText": "Olá!"})
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    assert reply.headers["x-request-id"]


def test_translate_auto_detection_example_is_byte_compatible(open_server):
    text = "O Governo aprovou hoje o orçamento do Estado para o próximo ano."
    reply = post_json(open_server, "/translate", {"q": text, "source": "auto", "target": "en"})
    assert reply.status == 200, reply.body
    data = reply.json
    detected = data["detectedLanguage"]
    assert detected["language"] == "pt"
    assert isinstance(detected["confidence"], float) and 50 <= detected["confidence"] <= 100
    assert detected["confidence"] == round(detected["confidence"])  # a whole number, as LT's
    assert reply.body == flask_bytes({"detectedLanguage": detected, "translatedText": text})
    assert reply.body.startswith(b'{"detectedLanguage":{"confidence":')


@pytest.mark.parametrize("name", ["futebol.txt", "parlamento.txt", "inflacao.txt"])
def test_translate_article_whitespace_exact(open_server, name):
    article = (ARTICLES / name).read_text("utf-8")
    reply = post_json(open_server, "/translate", {"q": article, "source": "pt", "target": "en"})
    assert reply.status == 200, reply.body
    assert reply.json["translatedText"] == article


def test_translate_html_format_keeps_markup(open_server):
    page = (ARTICLES / "greve.html").read_text("utf-8")
    reply = post_json(
        open_server, "/translate", {"q": page, "source": "pt", "target": "en", "format": "html"}
    )
    assert reply.status == 200, reply.body
    assert reply.json["translatedText"] == page
    # The documented HTML example's shape: markup (attributes included) comes back.
    snippet = '<p class="green">Olá!</p>'
    reply = post_json(
        open_server, "/translate", {"q": snippet, "source": "pt", "target": "en", "format": "html"}
    )
    assert reply.body == flask_bytes({"translatedText": snippet})


def test_translate_list_q_gives_lists(open_server):
    texts = [
        "Os professores estão em greve há três semanas.",
        "O sismo foi sentido em Lisboa.\n\nNão há feridos a registar.",
    ]
    reply = post_json(open_server, "/translate", {"q": texts, "source": "auto", "target": "en"})
    assert reply.status == 200, reply.body
    data = reply.json
    assert data["translatedText"] == texts
    assert isinstance(data["detectedLanguage"], list) and len(data["detectedLanguage"]) == 2
    for detected in data["detectedLanguage"]:
        assert set(detected) == {"confidence", "language"}
        assert 0 <= detected["confidence"] <= 100
    # With a source given: no detectedLanguage, as LibreTranslate.
    reply = post_json(open_server, "/translate", {"q": texts, "source": "pt", "target": "en"})
    assert reply.body == flask_bytes({"translatedText": texts})


def test_translate_pivot_route(open_server):
    reply = post_json(open_server, "/translate", {"q": "Bom dia.", "source": "pt", "target": "de"})
    assert reply.status == 200, reply.body
    assert reply.json == {"translatedText": "Bom dia."}


def test_translate_form_bodies_and_query_string(open_server):
    article = (ARTICLES / "incendio.txt").read_text("utf-8")
    fields = {"q": article, "source": "pt", "target": "en", "format": "text"}
    for reply in (
        post_form(open_server, "/translate", fields),
        post_multipart(open_server, "/translate", fields),
        call(open_server, "POST", "/translate?" + urllib.parse.urlencode(fields)),
    ):
        assert reply.status == 200, reply.body
        assert reply.body == flask_bytes({"translatedText": article})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"source": "pt", "target": "en"}, "Invalid request: missing q parameter"),
        ({"q": "", "source": "pt", "target": "en"}, "Invalid request: missing q parameter"),
        ({"q": "Olá", "target": "en"}, "Invalid request: missing source parameter"),
        ({"q": "Olá", "source": "pt"}, "Invalid request: missing target parameter"),
        (
            {"q": "Olá", "source": "pt", "target": "en", "alternatives": 3},
            "Invalid request: alternatives parameter must be <= 0",
        ),
        (
            {"q": "Olá", "source": "pt", "target": "en", "alternatives": "many"},
            "Invalid request: alternatives parameter is not a number",
        ),
        (
            {"q": "Olá", "source": "pt", "target": "en", "format": "pdf"},
            "pdf format is not supported",
        ),
        ({"q": "   ", "source": "pt", "target": "en"}, "q is empty"),
        ({"q": ["Olá", " "], "source": "pt", "target": "en"}, "q[1] is empty"),
    ],
)
def test_translate_bad_requests_are_400_with_lt_messages(open_server, body, message):
    assert_lt_error(post_json(open_server, "/translate", body), 400, message)


def test_translate_other_bad_requests_are_400(open_server):
    cases = [
        b"{not json",
        b"[1, 2]",
        json.dumps({"q": ["Olá", 3], "source": "pt", "target": "en"}).encode(),
        json.dumps({"q": "Olá", "source": "pt", "target": "x y"}).encode(),
        json.dumps({"q": "Olá", "source": "pt", "target": "fr"}).encode(),  # no route
        json.dumps({"q": "Olá", "source": 7, "target": "en"}).encode(),
        # A lone surrogate is valid JSON but not text: a 400, never a 500.
        b'{"q": "ol\\ud800", "source": "pt", "target": "en"}',
    ]
    for body in cases:
        message = assert_lt_error(post_json(open_server, "/translate", body), 400)
        assert "Traceback" not in message
    message = assert_lt_error(
        post_json(open_server, "/translate", {"q": "Olá", "source": "pt", "target": "fr"}), 400
    )
    assert "fr" in message and "target_language" not in message
    message = assert_lt_error(
        post_json(open_server, "/translate", {"q": "Olá", "source": "pt", "target": "x y"}), 400
    )
    assert message.startswith("target:")


def test_limits_are_400_in_lt_shape():
    config = _config(max_chars_per_text=50, max_message_bytes=2048)
    with BackgroundServer(config) as running:
        reply = post_json(running, "/translate", {"q": "a" * 51, "source": "pt", "target": "en"})
        message = assert_lt_error(reply, 400)
        assert message == "q has 51 characters; the limit is 50"
        settings = call(running, "GET", "/frontend/settings").json
        assert settings["charLimit"] == 50
        # Refused by the core's middleware before the handler runs: still LibreTranslate's shape.
        reply = post_json(running, "/translate", {"q": "a" * 3000, "source": "pt", "target": "en"})
        message = assert_lt_error(reply, 400)
        assert "max_message_bytes" in message
        assert reply.headers["Access-Control-Allow-Origin"] == "*"


# -- /detect, /languages, /frontend/settings ---------------------------------------------------


def test_detect(open_server):
    text = "O Governo aprovou hoje o orçamento do Estado para o próximo ano."
    for reply in (
        post_json(open_server, "/detect", {"q": text}),
        post_form(open_server, "/detect", {"q": text}),
    ):
        assert reply.status == 200, reply.body
        data = reply.json
        assert isinstance(data, list) and 1 <= len(data) <= 3
        assert data[0]["language"] == "pt"
        for candidate in data:
            assert list(candidate) == ["confidence", "language"]
            assert 0 <= candidate["confidence"] <= 100
        assert reply.body == flask_bytes(data)
    assert_lt_error(
        post_json(open_server, "/detect", {}), 400, "Invalid request: missing q parameter"
    )


def test_languages_lists_routes_with_pivots(open_server):
    reply = call(open_server, "GET", "/languages")
    assert reply.status == 200
    table = reply.json
    assert reply.body == flask_bytes(table)
    by_code = {row["code"]: row for row in table}
    assert set(by_code) == {"pt", "en", "de"}
    for row in table:
        assert list(row) == ["code", "name", "targets"]
    assert by_code["pt"]["targets"] == ["de", "en"]  # de through the pivot (en)
    assert by_code["en"]["targets"] == ["de"]
    assert by_code["de"]["targets"] == []
    assert by_code["pt"]["name"] == "Portuguese"
    assert by_code["de"]["name"] == "German"


def test_health(open_server, tmp_path):
    reply = call(open_server, "GET", "/health")
    assert reply.body == flask_bytes({"status": "ok"})
    gone = {
        "name": "gone",
        "task": "translation",
        "source": str(tmp_path / "nothing"),
        "languages": ["pt-en"],
    }
    config = make_config([gone], http=True, http_port=0)
    with BackgroundServer(config, ready_timeout=60) as running:
        assert not running.ready
        reply = call(running, "GET", "/health")
        assert reply.status == 503 and reply.json == {"status": "unavailable"}
        # A model that failed to load: translating is a 503 in LibreTranslate's error shape.
        reply = post_json(running, "/translate", {"q": "Olá.", "source": "pt", "target": "en"})
        message = assert_lt_error(reply, 503)
        assert "gone" in message


def test_frontend_settings_shape(open_server, keyed_server):
    data = call(open_server, "GET", "/frontend/settings").json
    assert set(data) == {
        "apiKeys",
        "charLimit",
        "filesTranslation",
        "frontendTimeout",
        "keyRequired",
        "language",
        "suggestions",
        "supportedFilesFormat",
    }
    assert data["charLimit"] == open_server.config.server.max_chars_per_text
    assert data["apiKeys"] is False and data["keyRequired"] is False
    assert data["suggestions"] is False and data["filesTranslation"] is False
    assert data["supportedFilesFormat"] == []
    assert data["language"] == {
        "source": {"code": "auto", "name": "Auto Detect"},
        "target": {"code": "en", "name": "English"},
    }
    keyed = call(keyed_server, "GET", "/frontend/settings").json
    assert keyed["apiKeys"] is True and keyed["keyRequired"] is True


# -- features that are off ----------------------------------------------------------------------


def test_unsupported_features_answer_as_lt_with_them_off(open_server):
    assert_lt_error(
        post_multipart(open_server, "/translate_file", {"source": "pt", "target": "en"}),
        403,
        "Files translation are disabled on this server.",
    )
    assert_lt_error(
        post_json(open_server, "/suggest", {"q": "a", "s": "b", "source": "pt", "target": "en"}),
        403,
        "Suggestions are disabled on this server.",
    )
    assert_lt_error(
        call(open_server, "GET", "/download_file/x.txt"),
        400,
        "Files translation are disabled on this server.",
    )


def test_cors_preflight(open_server):
    reply = call(
        open_server,
        "OPTIONS",
        "/translate",
        headers={"Origin": "https://cms.example", "Access-Control-Request-Method": "POST"},
    )
    assert reply.status == 200
    assert reply.headers["Access-Control-Allow-Origin"] == "*"
    assert "Content-Type" in reply.headers["Access-Control-Allow-Headers"]


# -- keys, quotas, request ids, access log, metrics ---------------------------------------------


def test_api_keys(keyed_server):
    body = {"q": "Olá.", "source": "pt", "target": "en"}
    assert_lt_error(
        post_json(keyed_server, "/translate", body), 403
    )  # LibreTranslate: 403 for key problems
    assert_lt_error(
        post_json(keyed_server, "/translate", {**body, "api_key": "wrong"}), 403, "Invalid API key"
    )
    assert_lt_error(
        post_json(keyed_server, "/detect", {"q": "Olá.", "api_key": "wrong"}),
        403,
        "Invalid API key",
    )
    ok = flask_bytes({"translatedText": "Olá."})
    assert post_json(keyed_server, "/translate", {**body, "api_key": KEY}).body == ok
    assert post_form(keyed_server, "/translate", {**body, "api_key": KEY}).body == ok
    assert post_multipart(keyed_server, "/translate", {**body, "api_key": KEY}).body == ok
    assert (
        post_json(keyed_server, "/translate", body, {"Authorization": f"Bearer {KEY}"}).body == ok
    )
    # A wrong key in the body cannot be rescued, nor a good one spoiled, by the other source:
    # the header wins when present.
    reply = post_json(
        keyed_server, "/translate", {**body, "api_key": KEY}, {"Authorization": "Bearer nope"}
    )
    assert_lt_error(reply, 403, "Invalid API key")
    # As in LibreTranslate, the languages, the settings and CORS preflights need no key.
    assert call(keyed_server, "GET", "/languages").status == 200
    assert call(keyed_server, "OPTIONS", "/translate").status == 200
    assert call(keyed_server, "GET", "/frontend/settings").status == 200
    # Key errors come before body errors: an anonymous caller learns nothing about the body.
    assert_lt_error(post_json(keyed_server, "/translate", b"{bad"), 403)


def test_quota_is_429_slow_down():
    config = _config(api_keys=[QUOTA_KEY], quota_requests_per_minute=2)
    with BackgroundServer(config) as running:
        body = {"q": "Olá.", "source": "pt", "target": "en", "api_key": QUOTA_KEY}
        assert post_json(running, "/translate", body).status == 200
        assert post_json(running, "/translate", body).status == 200
        reply = post_json(running, "/translate", body)
        message = assert_lt_error(reply, 429)
        assert message.startswith("Slowdown: ")
        assert int(reply.headers["Retry-After"]) >= 1
        # A refused (invalid) request costs nothing: it is still 400, not 429.
        assert_lt_error(post_json(running, "/translate", {**body, "q": ""}), 400)


def test_request_id_access_log_and_metrics(open_server, caplog):
    with caplog.at_level(logging.INFO, logger="dragoman_server.access"):
        reply = post_json(
            open_server,
            "/translate",
            {"q": "Olá.", "source": "pt", "target": "en"},
            {"x-request-id": "lt-req-42"},
        )
        bad = post_json(open_server, "/translate", {"q": "Olá.", "source": "pt"})
    assert reply.headers["x-request-id"] == "lt-req-42"
    assert bad.status == 400 and bad.headers["x-request-id"]
    records = [r for r in caplog.records if getattr(r, "request_id", None) == "lt-req-42"]
    assert len(records) == 1
    assert records[0].method == "POST /translate" and records[0].status == "OK"
    metrics = open_server.server.metrics.text()
    assert 'dragoman_requests_total{code="OK",method="POST /translate"}' in metrics
    assert 'method="POST /translate"' in metrics and 'code="INVALID_ARGUMENT"' in metrics


# -- a LibreTranslate client, unchanged, pointed at Dragoman ------------------------------------


def test_libretranslatepy_client(open_server, keyed_server):
    libretranslatepy = pytest.importorskip("libretranslatepy")
    client = libretranslatepy.LibreTranslateAPI(f"http://127.0.0.1:{open_server.http_port}/")
    article = (ARTICLES / "parlamento.txt").read_text("utf-8")
    assert client.translate(article, "pt", "en") == article
    assert client.detect("O Governo aprovou hoje o orçamento do Estado.")[0]["language"] == "pt"
    assert {row["code"] for row in client.languages()} == {"pt", "en", "de"}
    keyed = libretranslatepy.LibreTranslateAPI(
        f"http://127.0.0.1:{keyed_server.http_port}/", api_key=KEY
    )
    assert keyed.translate("Bom dia.", "pt", "en") == "Bom dia."


def test_large_bodies_are_parsed_off_the_loop_and_limited(open_server):
    # Over OFF_LOOP_BYTES: parsed in a worker thread; over max_chars_per_text: a 400 naming q.
    limit = open_server.config.server.max_chars_per_text
    text = "O Governo aprovou o orçamento. " * (limit // 30 + 10)
    for reply in (
        post_json(open_server, "/detect", {"q": text}),
        post_form(open_server, "/translate", {"q": text, "source": "pt", "target": "en"}),
    ):
        assert_lt_error(reply, 400, f"q has {len(text)} characters; the limit is {limit}")


def test_text_that_looks_like_internal_placeholders_round_trips(open_server):
    # Inline tags travel through the model as <x1>..</x1>-style placeholders: a caller's own
    # text of that shape, plain or escaped in HTML, must come back as it was.
    plain = "O código <x1>secreto</x1> e <x2/> ficam como estão.\n\n<N1>Fim</N1>"
    html = "<p>O código &lt;x1&gt;secreto&lt;/x1&gt; e <b>negrito</b> <x1>cru</x1>.</p>"
    for q, text_format in ((plain, "text"), (html, "html")):
        reply = post_json(
            open_server,
            "/translate",
            {"q": q, "source": "pt", "target": "en", "format": text_format},
        )
        assert reply.status == 200, reply.body
        assert reply.json["translatedText"] == q


def test_concurrent_callers_get_their_own_texts(open_server):
    from concurrent.futures import ThreadPoolExecutor

    texts = [
        f"O parlamento votou a proposta número {i}.\n\nA sessão terminou às {i}h." for i in range(8)
    ]

    def one(i: int) -> str:
        reply = post_json(
            open_server, "/translate", {"q": texts[i], "source": "pt", "target": "en"}
        )
        assert reply.status == 200, reply.body
        return reply.json["translatedText"]

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(one, range(8))) == texts


def test_deadline_header_is_504_in_lt_shape(open_server):
    article = (ARTICLES / "parlamento.txt").read_text("utf-8") * 20
    reply = post_json(
        open_server,
        "/translate",
        {"q": article, "source": "pt", "target": "en"},
        {"X-Server-Timeout": "0.05"},
    )
    message = assert_lt_error(reply, 504)
    assert "deadline" in message
    # The server is still fine afterwards.
    ok = post_json(open_server, "/translate", {"q": "Olá.", "source": "pt", "target": "en"})
    assert ok.body == flask_bytes({"translatedText": "Olá."})
