"""The client library (sync and asyncio) against the real server, in process, on 127.0.0.1.

The `server` fixture (conftest.py) serves copy-pt-en (pt-en) and copy-en-de (en-de), which copy
their input exactly, and tiny-summarizer (a tiny random BART, en and pt).
"""

import asyncio
import dataclasses
import json
import os
import pickle
import socket
import subprocess
import sys
import threading
import time
from concurrent import futures

import grpc
import pytest

import dragoman
from conftest import ROOT, copy_model, make_config, needs_copy_model
from dragoman import (
    AsyncClient,
    Client,
    DragomanError,
    GlossaryEntry,
    LanguageScore,
    ModelInfo,
    RouteHop,
    Summary,
    Translation,
    TranslationChunk,
    _requests,
)
from dragoman.v1 import dragoman_pb2
from dragoman_server.server import BackgroundServer

pytestmark = needs_copy_model

PT = [
    "O presidente da república falou ontem aos jornalistas em Lisboa sobre a economia.",
    "A câmara municipal do Porto aprovou o orçamento para o próximo ano com votos contra.",
    "Os agricultores do Alentejo queixam-se da seca que afeta as colheitas desde a primavera.",
]
ARTICLE = (
    "Governo anuncia novas medidas para a habitação\n"
    "\n"
    "O governo anunciou hoje um conjunto de medidas para responder à crise da habitação.\n"
    "As medidas incluem apoios ao arrendamento para jovens e famílias com rendimentos baixos.\n"
    "\n"
    "A oposição criticou o pacote, que considera insuficiente, e pediu um debate urgente.\n"
)
CLIENT_ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(ROOT / "client"), str(ROOT / "service")]),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def client(server):
    with Client(server.address, timeout=60) as c:
        yield c


# -- translate -----------------------------------------------------------------------------------


def test_translate_a_str_gives_a_one_element_list(client):
    # A sentence no other test sends: a cache hit would rightly report 0 tokens read.
    text = "O jornal da tarde abriu com a notícia do acordo entre os sindicatos e o governo."
    results = client.translate(text, to="en", source="pt")
    assert isinstance(results, list) and len(results) == 1
    [result] = results
    assert isinstance(result, Translation)
    assert result.text == text
    assert result.source_language == "pt"
    assert result.source_language_detected is False
    assert result.detection_confidence == 0.0
    assert result.models == ["copy-pt-en"]
    assert result.route == [RouteHop("copy-pt-en", "pt", "en")]
    assert result.pivoted is False
    assert result.applied_glossary == {}
    assert result.input_tokens > 0 and result.output_tokens > 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.text = "changed"


def test_translate_a_list_keeps_order_and_detects_per_text(client):
    texts = [PT[2], PT[0], PT[1], PT[0]]
    results = client.translate(texts, to="en")
    assert [r.text for r in results] == texts
    for result in results:
        assert result.source_language == "pt"
        assert result.source_language_detected is True
        assert 0 < result.detection_confidence <= 1
    assert client.translate((t for t in PT), to="en", source="pt")[2].text == PT[2]


def test_translate_pivots_through_english(client):
    [result] = client.translate(ARTICLE, to="de", source="pt")
    assert result.text == ARTICLE
    assert result.pivoted is True
    assert result.route == [RouteHop("copy-pt-en", "pt", "en"), RouteHop("copy-en-de", "en", "de")]
    assert result.models == ["copy-pt-en", "copy-en-de"]


def test_translate_with_model_html_and_glossary(client):
    html = "<p>Olá <b>Lisboa</b> &amp; Porto.</p>"
    [result] = client.translate(
        html, to="en", source="pt", model="copy-pt-en", mime_type="text/html"
    )
    assert result.text == html
    text = "A cidade de Lisboa e a cidade do Porto ficam em Portugal, junto ao mar."
    [by_dict] = client.translate(
        text, "en", source="pt", glossary={"Lisboa": None, "Porto": "Oporto"}
    )
    assert by_dict.text == text.replace("Porto", "Oporto")
    assert by_dict.applied_glossary == {"Lisboa": "", "Porto": "Oporto"}
    entries = [GlossaryEntry("Porto", "Oporto"), dragoman_pb2.GlossaryEntry(source="Lisboa")]
    [by_list] = client.translate(text, "en", source="pt", glossary=entries)
    assert by_list.text == by_dict.text


# -- translate_stream ----------------------------------------------------------------------------


def test_stream_is_in_order_and_joins_to_the_translation(client):
    texts = [ARTICLE, PT[1]]
    chunks = list(client.translate_stream(texts, to="en", source="pt"))
    assert all(isinstance(c, TranslationChunk) for c in chunks)
    assert [c.text_index for c in chunks] == sorted(c.text_index for c in chunks)
    translations = client.translate(texts, to="en", source="pt")
    for index, translation in enumerate(translations):
        mine = [c for c in chunks if c.text_index == index]
        assert [c.paragraph_index for c in mine] == list(range(len(mine)))
        assert [c.last for c in mine] == [False] * (len(mine) - 1) + [True]
        assert "".join(c.text for c in mine) == translation.text == texts[index]
        assert all(c.models == ["copy-pt-en"] and c.source_language == "pt" for c in mine)
    assert len([c for c in chunks if c.text_index == 0]) > 3


def test_stream_close_cancels_and_errors_arrive_while_iterating(client):
    with client.translate_stream(ARTICLE, to="en", source="pt") as stream:
        first = next(stream)
        assert first.text_index == 0 and first.paragraph_index == 0
    assert list(stream) == []  # closed: iteration stops
    stream = client.translate_stream([PT[0], ""], to="en", source="pt")
    with pytest.raises(DragomanError) as caught:
        list(stream)
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "texts[1]" in caught.value.message


# -- summarize, detect, models, health -----------------------------------------------------------


def test_summarize(client):
    text = " ".join(PT * 3)
    summary = client.summarize(text, source="pt", length="short", format="paragraph")
    assert isinstance(summary, Summary)
    assert summary.summary.strip()
    assert summary.source_language == "pt" and summary.source_language_detected is False
    assert summary.target_language == "pt"
    assert summary.models == ["tiny-summarizer"]
    assert summary.path == "summarize" and summary.rounds >= 1
    assert summary.input_tokens > 0 and summary.output_tokens > 0
    bullets = client.summarize(text, max_words=30, format="BULLETS")
    assert bullets.source_language_detected is True
    assert all(line.startswith("- ") for line in bullets.summary.splitlines())


def test_detect(client):
    scores = client.detect(PT[0])
    assert all(isinstance(s, LanguageScore) for s in scores)
    assert scores[0].language == "pt" and 0.5 < scores[0].confidence <= 1
    assert 1 < len(scores) <= 3
    assert len(client.detect(PT[0], max_results=1)) == 1


def test_models(client):
    models = {m.name: m for m in client.models()}
    assert all(isinstance(m, ModelInfo) for m in models.values())
    assert models["copy-pt-en"].task == "translation"
    assert models["copy-pt-en"].state == "ready"
    assert models["copy-pt-en"].languages == ["pt-en"]
    assert models["copy-pt-en"].error == ""
    assert models["copy-pt-en"].backend and models["copy-pt-en"].device
    assert models["tiny-summarizer"].task == "summarization"
    assert models["tiny-summarizer"].languages == ["en", "pt"]


def test_health(client):
    assert client.health() == "SERVING"
    assert client.health("dragoman.v1.Dragoman", timeout=5) == "SERVING"
    assert client.health("no.such.Service") == "SERVICE_UNKNOWN"


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "code", "words"),
    [
        (
            lambda c: c.translate([PT[0], ""], to="en", source="pt"),
            "INVALID_ARGUMENT",
            ["texts[1]"],
        ),
        (lambda c: c.translate(PT[0], to="en", model="nope"), "NOT_FOUND", ["nope"]),
        (lambda c: c.translate(PT[0], to="ja", source="pt"), "INVALID_ARGUMENT", ["ja"]),
        (lambda c: c.summarize(" "), "INVALID_ARGUMENT", ["text"]),
        (lambda c: c.detect(""), "INVALID_ARGUMENT", ["text"]),
    ],
)
def test_server_errors_are_dragoman_errors(client, call, code, words):
    with pytest.raises(DragomanError) as caught:
        call(client)
    error = caught.value
    assert error.code == getattr(grpc.StatusCode, code)
    assert all(word in error.message for word in words)
    assert str(error) == f"{code}: {error.message}"
    assert error.__cause__ is None and error.__suppress_context__  # raised `from None`
    assert error.debug_error_string
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.code, copy.message, str(copy)) == (error.code, error.message, str(error))


def test_client_side_checks_raise_before_calling():
    # Nothing listens on this port: these fail before any call is made.
    with Client(f"127.0.0.1:{free_port()}", timeout=30) as c:
        started = time.monotonic()
        for call in (
            lambda: c.translate(PT[0], to=""),
            lambda: c.translate(PT[0], to=None),
            lambda: c.summarize(PT[0], length="huge"),
            lambda: c.summarize(PT[0], format="table"),
            lambda: c.summarize(PT[0], max_words=-1),
            lambda: c.translate(PT[0], to="en", glossary={"": "x"}),
        ):
            with pytest.raises(DragomanError) as caught:
                call()
            assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
        for call in (
            lambda: c.translate(b"bytes", to="en"),
            lambda: c.translate(["ok", 3], to="en"),
            lambda: c.translate(PT[0], to=1),
            lambda: c.translate(PT[0], to="en", glossary="Lisboa"),
            lambda: c.summarize(PT[0], max_words=True),
            lambda: c.detect(None),
            lambda: c.models(timeout="soon"),
            lambda: c.health(request_id=7),
        ):
            with pytest.raises(TypeError):
                call()
        assert time.monotonic() - started < 5


def test_a_tiny_deadline_is_deadline_exceeded(client):
    with pytest.raises(DragomanError) as caught:
        client.translate(ARTICLE, to="de", source="pt", timeout=0.0001)
    assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_calls_wait_for_the_server_but_health_does_not():
    with Client(f"127.0.0.1:{free_port()}", timeout=0.5) as c:
        with pytest.raises(DragomanError) as caught:
            c.translate(PT[0], to="en", source="pt")
        assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED  # waited: wait-for-ready
        started = time.monotonic()
        with pytest.raises(DragomanError) as caught:
            c.health(timeout=20)
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
        assert time.monotonic() - started < 10


def test_a_call_made_before_the_server_listens_waits_for_it():
    port = free_port()
    config = make_config([copy_model("copy-pt-en", "pt-en")], port=port, warmup=False)
    box: dict = {}

    def start_later():
        time.sleep(1.0)
        box["server"] = BackgroundServer(config).__enter__()

    starter = threading.Thread(target=start_later)
    with Client(f"127.0.0.1:{port}", timeout=60) as c:
        starter.start()
        try:
            # ListModels answers while models load: this shows wait-for-ready alone.
            assert [m.name for m in c.models()] == ["copy-pt-en"]
        finally:
            starter.join()
            if "server" in box:
                box["server"].__exit__(None, None, None)


# -- connection options --------------------------------------------------------------------------


def test_api_key_and_request_id_are_sent(server):
    with Client(server.address, api_key="some-key", timeout=60) as c:
        [result] = c.translate(PT[0], to="en", source="pt", request_id="req-123")
        assert result.text == PT[0]
        assert c.health(request_id="req-124") == "SERVING"
    settings = _requests.channel_settings(
        "h:1",
        timeout=5,
        api_key="k",
        tls=False,
        root_certificates=None,
        private_key=None,
        certificate_chain=None,
        credentials=None,
        retries=4,
        options=None,
    )
    assert settings.call_args(None, "r1") == {
        "timeout": 5.0,
        "metadata": (("authorization", "Bearer k"), ("x-request-id", "r1")),
    }
    assert settings.call_args(2, None) == {
        "timeout": 2.0,
        "metadata": (("authorization", "Bearer k"),),
    }


def test_several_addresses_use_round_robin(server):
    host, port = server.address.rsplit(":", 1)
    for target in ([server.address, server.address], f"dns:///{server.address}"):
        with Client(target, timeout=60) as c:
            assert c.translate(PT[1], to="en", source="pt")[0].text == PT[1]
            assert c.health() == "SERVING"
    with Client(["localhost:" + port, server.address]) as c:
        assert c.target == f"ipv4:{server.address}"
        assert c.translate(PT[1], to="en", source="pt")[0].text == PT[1]


def test_targets_and_service_config():
    resolve = _requests.resolve_target
    assert resolve("localhost:50051") == ("localhost:50051", False)
    assert resolve("dns:///dragoman:50051") == ("dns:///dragoman:50051", True)
    assert resolve("unix:/tmp/d.sock") == ("unix:/tmp/d.sock", False)
    assert resolve(["10.0.0.1:5001", "10.0.0.2:5002"]) == ("ipv4:10.0.0.1:5001,10.0.0.2:5002", True)
    assert resolve("10.0.0.1:5001, 10.0.0.2") == ("ipv4:10.0.0.1:5001,10.0.0.2:50051", True)
    assert resolve(["[::1]:5001", "[::2]:5002"]) == ("ipv6:[::1]:5001,[::2]:5002", True)
    assert resolve("ipv4:10.0.0.1:1,10.0.0.2:2") == ("ipv4:10.0.0.1:1,10.0.0.2:2", True)
    assert resolve(["10.0.0.1:5001"]) == ("10.0.0.1:5001", False)
    for bad in ("", [], ["10.0.0.1:1", "[::1]:2"], ["10.0.0.1:port", "10.0.0.2:1"]):
        with pytest.raises(ValueError):
            resolve(bad)

    config = json.loads(_requests.service_config(4, True))
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    dragoman_method, health_method = config["methodConfig"]
    assert dragoman_method["name"] == [{"service": "dragoman.v1.Dragoman"}]
    assert dragoman_method["waitForReady"] is True
    assert health_method["waitForReady"] is False
    policy = dragoman_method["retryPolicy"]
    assert policy["maxAttempts"] == 5 and policy["retryableStatusCodes"] == ["UNAVAILABLE"]
    assert (
        json.loads(_requests.service_config(9, False))["methodConfig"][0]["retryPolicy"][
            "maxAttempts"
        ]
        == 5
    )
    assert "loadBalancingConfig" not in json.loads(_requests.service_config(1, False))
    assert "retryPolicy" not in json.loads(_requests.service_config(0, False))["methodConfig"][0]


def test_bad_constructor_arguments():
    with pytest.raises(ValueError):
        Client("h:1", private_key=b"key")  # mutual TLS needs the chain too
    with pytest.raises(ValueError):
        Client("h:1", tls=True, credentials=grpc.ssl_channel_credentials())
    with pytest.raises(ValueError):
        Client("h:1", retries=-1)
    with pytest.raises(ValueError):
        Client("h:1", timeout=0)
    with pytest.raises(TypeError):
        Client(42)
    with Client("h:1", tls=True, options={"grpc.max_receive_message_length": 1}) as c:
        assert repr(c) == "Client('h:1')"


def test_unavailable_is_retried_per_the_service_config():
    """A bare gRPC server that answers UNAVAILABLE twice, then succeeds: the real server cannot
    be made to do that on demand. It also shows what metadata arrives."""
    attempts: list[dict] = []

    def list_models(request, context):
        attempts.append(dict(context.invocation_metadata()))
        if len(attempts) <= 2:
            context.abort(grpc.StatusCode.UNAVAILABLE, "warming up")
        return dragoman_pb2.ListModelsResponse(models=[dragoman_pb2.ModelInfo(name="m", task=1)])

    handler = grpc.method_handlers_generic_handler(
        "dragoman.v1.Dragoman",
        {
            "ListModels": grpc.unary_unary_rpc_method_handler(
                list_models,
                request_deserializer=dragoman_pb2.ListModelsRequest.FromString,
                response_serializer=dragoman_pb2.ListModelsResponse.SerializeToString,
            )
        },
    )
    bare = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    bare.add_generic_rpc_handlers((handler,))
    port = bare.add_insecure_port("127.0.0.1:0")
    bare.start()
    try:
        with Client(f"127.0.0.1:{port}", api_key="k1", timeout=10) as c:
            [model] = c.models(request_id="abc")
        assert model == ModelInfo("m", "translation", [], "", "unspecified", "", "", "")
        assert len(attempts) == 3
        assert attempts[-1]["authorization"] == "Bearer k1"
        assert attempts[-1]["x-request-id"] == "abc"
        attempts.clear()
        with Client(f"127.0.0.1:{port}", retries=0, timeout=10) as c:
            with pytest.raises(DragomanError) as caught:
                c.models()
        assert caught.value.code == grpc.StatusCode.UNAVAILABLE
        assert str(caught.value) == "UNAVAILABLE: warming up"
        assert len(attempts) == 1
    finally:
        bare.stop(0)


# -- asyncio -------------------------------------------------------------------------------------


def test_async_client_does_everything(server):
    async def scenario():
        async with AsyncClient(server.address, timeout=60, api_key="k") as c:
            results = await c.translate([PT[1], PT[0]], to="en", source="pt")
            assert [r.text for r in results] == [PT[1], PT[0]]
            [single] = await c.translate(ARTICLE, "de", source="pt")
            assert single.text == ARTICLE and single.pivoted
            chunks = [chunk async for chunk in c.translate_stream([ARTICLE, PT[2]], to="en")]
            assert [c.text_index for c in chunks] == sorted(c.text_index for c in chunks)
            assert "".join(c.text for c in chunks if c.text_index == 0) == ARTICLE
            assert "".join(c.text for c in chunks if c.text_index == 1) == PT[2]
            summary = await c.summarize(" ".join(PT), length="long", format="bullets")
            assert summary.summary and summary.source_language == "pt"
            assert (await c.detect(PT[2], max_results=2))[0].language == "pt"
            assert {m.name for m in await c.models()} >= {"copy-pt-en", "tiny-summarizer"}
            assert await c.health() == "SERVING"
            assert await c.health("no.such.Service") == "SERVICE_UNKNOWN"

            async with c.translate_stream(ARTICLE, to="en", source="pt") as stream:
                first = await stream.__anext__()
                assert first.paragraph_index == 0
            assert [chunk async for chunk in stream] == []  # closed: iteration stops

            errors = []
            for call in (
                c.translate([PT[0], ""], to="en", source="pt"),
                c.translate(PT[0], to="en", model="nope"),
                c.translate(ARTICLE, to="de", source="pt", timeout=0.0001),
                c.detect(""),
            ):
                with pytest.raises(DragomanError) as caught:
                    await call
                assert caught.value.__suppress_context__
                errors.append(caught.value)
            assert [e.code for e in errors] == [
                grpc.StatusCode.INVALID_ARGUMENT,
                grpc.StatusCode.NOT_FOUND,
                grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.INVALID_ARGUMENT,
            ]
            assert "texts[1]" in errors[0].message
            with pytest.raises(DragomanError) as caught:
                async for _ in c.translate_stream(["", PT[0]], to="en", source="pt"):
                    pass
            assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
            with pytest.raises(DragomanError) as caught:
                await c.translate(PT[0], to="")
            assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
            with pytest.raises(TypeError):
                await c.translate([1], to="en")

    asyncio.run(scenario())


def test_async_calls_run_concurrently_and_closing_the_channel_is_an_error(server):
    async def scenario():
        async with AsyncClient([server.address, server.address], timeout=60) as c:
            results = await asyncio.gather(
                *(c.translate(text, to="en", source="pt") for text in PT * 3)
            )
            assert [r.text for [r] in results] == PT * 3
        # Nothing listens here: the call waits for a server (wait-for-ready) until closed.
        c = AsyncClient(f"127.0.0.1:{free_port()}", timeout=60)
        pending = asyncio.ensure_future(c.translate(PT[0], to="en", source="pt"))
        await asyncio.sleep(0.2)
        await c.close()
        with pytest.raises(DragomanError) as caught:
            await pending
        assert caught.value.code == grpc.StatusCode.CANCELLED

    asyncio.run(scenario())


# -- packaging -----------------------------------------------------------------------------------


def test_the_client_imports_neither_the_server_nor_a_second_health_proto():
    script = """
import sys
from google.protobuf import descriptor_pool
import dragoman, dragoman.aio, dragoman.cli
heavy = {"torch", "transformers", "dragoman_server", "numpy"}
assert not heavy & set(sys.modules), heavy & set(sys.modules)
try:
    descriptor_pool.Default().FindFileByName("grpc/health/v1/health.proto")
except KeyError:
    pass
else:
    raise AssertionError("health.proto in the default pool")
from grpc_health.v1 import health_pb2  # the real one still registers cleanly
print(dragoman.__version__)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], env=CLIENT_ENV, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()


def test_public_names():
    for name in dragoman.__all__:
        assert hasattr(dragoman, name)
    assert issubclass(DragomanError, Exception)
