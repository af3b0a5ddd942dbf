"""Property tests: arbitrary text and parameters through the real client never crash the server,
and every answer is OK or a documented status with a message."""

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dragoman
from conftest import copy_model, make_config, needs_copy_model
from dragoman_server.server import BackgroundServer

pytestmark = [needs_copy_model, pytest.mark.timeout(240)]
MODEL = "copy-pt-en"
DOCUMENTED = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}
TRIED = {"translate": 0, "params": 0, "detect": 0, "summarize": 0}

# Hostile text: control characters, emoji, RTL scripts, huge words, blank paragraphs, mixed scripts.
PIECES = st.sampled_from(
    [
        "Olá, mundo.",
        "The quick brown fox.",
        "مرحبا بالعالم",
        "שלום עולם",
        "\u202eRTL override\u202c",
        "😀👍🏽🇧🇷",
        "\x00\x01\x07\x1b[31m",
        "\n\n\n",
        "\r\n \t",
        "a" * 300,
        "Supercalifragilisticexpialidocious" * 5,
        "日本語の文章です。",
        "Ελληνικά",
        "\ufeff\u200b\u200d",
        "\ud7ff\ue000\U0010fffd",
        ". . . ! ? ;",
    ]
)
TEXTS = st.one_of(
    st.text(max_size=80),
    st.lists(st.one_of(PIECES, st.text(max_size=20)), min_size=1, max_size=6).map("".join),
)
LANGS = st.one_of(
    st.sampled_from(["en", "pt", "pt-BR", "de", "xx", "", "EN", "zz-ZZ-x", "en-", "123"]),
    st.text(max_size=8),
)


@pytest.fixture(scope="module")
def client():
    config = make_config([copy_model(MODEL, "pt-en")], max_chars_per_text=2000)
    with BackgroundServer(config) as server:
        assert server.ready
        with dragoman.Client(server.address, retries=0, timeout=30) as c:
            yield c
        assert server.server.server is not None
    print(f"\nfuzz cases tried: {TRIED}")


def _check(call):
    try:
        return call()
    except dragoman.DragomanError as exc:
        assert exc.code in DOCUMENTED, f"{exc.code}: {exc.message}"
        assert exc.message
        return None


FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


@FUZZ
@given(texts=st.lists(TEXTS, min_size=1, max_size=3))
def test_translate_arbitrary_text_pt_en(client, texts):
    TRIED["translate"] += 1
    result = _check(lambda: client.translate(texts, to="en", source="pt"))
    if result is not None:
        assert len(result) == len(texts)


@FUZZ
@given(
    text=TEXTS,
    to=LANGS,
    source=st.one_of(st.none(), LANGS),
    model=st.sampled_from([None, MODEL, "nope", ""]),
)
def test_translate_arbitrary_parameters(client, text, to, source, model):
    TRIED["params"] += 1
    _check(
        lambda: client.translate(
            text or "x", to=to or "en", source=source or None, model=model or None
        )
    )


@settings(FUZZ, max_examples=60)
@given(text=TEXTS, max_results=st.integers(0, 150))
def test_detect_arbitrary(client, text, max_results):
    TRIED["detect"] += 1
    if hasattr(client, "detect"):
        _check(lambda: client.detect(text or "x", max_results=max_results))


@settings(FUZZ, max_examples=30)
@given(text=TEXTS, max_words=st.integers(0, 5000))
def test_summarize_without_a_summariser_is_a_documented_error(client, text, max_words):
    TRIED["summarize"] += 1
    _check(lambda: client.summarize(text or "x", max_words=max_words or None))


def test_server_still_healthy_after_fuzzing(client):
    assert client.health() == "SERVING"
    assert client.translate("Ainda vivo.", to="en", source="pt")[0].text == "Ainda vivo."
