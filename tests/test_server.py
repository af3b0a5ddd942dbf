"""The server through the real client: health, reflection, routing, chunking, every error path."""

import subprocess
import sys

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

import dragoman
from conftest import COPY_MODEL, ROOT, copy_model, make_config, needs_copy_model
from dragoman_server.server import BackgroundServer
from dragoman_server.settings import Config, load_config

ARTICLE = (ROOT / "tests" / "data" / "article_pt.txt").read_text("utf-8")

pytestmark = needs_copy_model


@pytest.fixture(scope="module")
def client(server):
    with dragoman.Client(server.address, timeout=60) as c:
        yield c


def codes_of(excinfo) -> grpc.StatusCode:
    return excinfo.value.code


def test_health_serving_and_reflection_lists_services(server):
    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "dragoman.v1.Dragoman"):
            answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        [response] = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
        names = {s.name for s in response.list_services_response.service}
        assert {"dragoman.v1.Dragoman", "grpc.health.v1.Health"} <= names
        request = reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="dragoman.v1.Dragoman"
        )
        [response] = list(stub.ServerReflectionInfo(iter([request]), timeout=5))
        assert response.file_descriptor_response.file_descriptor_proto


def test_whole_article_longer_than_window_comes_back_exactly(client):
    [result] = client.translate(ARTICLE, to="en", source="pt")
    assert result.text == ARTICLE
    assert result.models == ["copy-pt-en"]
    assert not result.pivoted
    assert result.input_tokens > 64 * 4  # far longer than the 64-token window


def test_many_texts_in_one_call_keep_their_order(client):
    texts = [f"Notícia número {i}: o índice subiu {i},{i}%." for i in range(40)]
    results = client.translate(texts, to="en", source="pt")
    assert [r.text for r in results] == texts


def test_detected_source_language_is_reported(client):
    [result] = client.translate(ARTICLE, to="en")
    assert result.text == ARTICLE
    assert result.source_language == "pt"
    assert result.source_language_detected
    assert 0.5 < result.detection_confidence <= 1.0


def test_pivot_through_english(client):
    [result] = client.translate(ARTICLE, to="de", source="pt")
    assert result.text == ARTICLE
    assert result.pivoted
    assert result.models == ["copy-pt-en", "copy-en-de"]
    assert [(h.source_language, h.target_language) for h in result.route] == [
        ("pt", "en"),
        ("en", "de"),
    ]


def test_language_codes_are_normalised_and_regions_fall_back(client):
    [result] = client.translate("Bom dia, Lisboa.", to="EN_us", source="pt_BR")
    assert result.text == "Bom dia, Lisboa."
    assert result.source_language == "pt-BR"
    assert result.models == ["copy-pt-en"]


def test_stream_paragraphs_in_order_join_to_the_translation(client):
    chunks = list(client.translate_stream([ARTICLE, "Olá."], to="en", source="pt"))
    for index, text in enumerate([ARTICLE, "Olá."]):
        mine = [c for c in chunks if c.text_index == index]
        assert [c.paragraph_index for c in mine] == list(range(len(mine)))
        assert mine[-1].last and not any(c.last for c in mine[:-1])
        assert "".join(c.text for c in mine) == text
    assert len([c for c in chunks if c.text_index == 0]) == 7  # every non-blank line is a paragraph
    assert [c.text_index for c in chunks] == sorted(c.text_index for c in chunks)


def test_summary_of_input_longer_than_window_is_bounded(client):
    summary = client.summarize(ARTICLE * 3, source="pt", max_words=30)
    assert summary.summary.strip()
    assert len(summary.summary.split()) <= 30
    assert 1 < summary.rounds <= 3
    assert summary.path == "summarize"
    assert summary.input_tokens > summary.output_tokens > 0


def test_cross_lingual_summary_path(client):
    summary = client.summarize(ARTICLE, source="pt", to="en")
    assert summary.path == "summarize-then-translate"
    assert summary.models[0] == "tiny-summarizer"
    assert summary.models[-1] == "copy-pt-en"
    assert summary.target_language == "en"


def test_bullets_format(client):
    summary = client.summarize(ARTICLE, source="pt", format="bullets")
    assert all(line.startswith("- ") for line in summary.summary.splitlines())


def test_detect_ranks_languages(client):
    scores = client.detect("O presidente da república falou ontem aos jornalistas em Lisboa.")
    assert scores[0].language == "pt"
    assert scores[0].confidence > 0.5
    assert scores == sorted(scores, key=lambda s: -s.confidence)


def test_list_models(client):
    models = {m.name: m for m in client.models()}
    assert set(models) == {"copy-pt-en", "copy-en-de", "tiny-marian", "tiny-summarizer"}
    assert models["copy-pt-en"].state == "ready"
    assert models["copy-pt-en"].languages == ["pt-en"]
    assert models["tiny-summarizer"].task == "summarization"


@pytest.mark.parametrize(
    ("call", "code", "words"),
    [
        (
            lambda c: c.translate(["Olá.", "   "], to="en", source="pt"),
            "INVALID_ARGUMENT",
            ["texts[1]", "empty"],
        ),
        (
            lambda c: c.translate("Olá.", to="", source="pt"),
            "INVALID_ARGUMENT",
            ["target"],
        ),
        (lambda c: c.translate("Olá.", to="e!n"), "INVALID_ARGUMENT", ["target_language", "e!n"]),
        (
            lambda c: c.translate("Olá.", to="en", source="x1"),
            "INVALID_ARGUMENT",
            ["source_language"],
        ),
        (
            lambda c: c.translate("Olá.", to="ja", source="pt"),
            "INVALID_ARGUMENT",
            ["pt-en", "supported"],
        ),
        (
            lambda c: c.translate("Olá.", to="en", source="pt", model="nope"),
            "NOT_FOUND",
            ["model", "nope"],
        ),
        (
            lambda c: c.translate("Olá.", to="en", source="pt", model="tiny-summarizer"),
            "INVALID_ARGUMENT",
            ["model", "summarization"],
        ),
        (
            lambda c: c.translate("Olá.", to="en", source="pt", model="copy-en-de"),
            "INVALID_ARGUMENT",
            ["copy-en-de", "en-de"],
        ),
        (
            lambda c: c.translate("Guten Morgen, wie geht es Ihnen heute in Berlin?", to="en"),
            "INVALID_ARGUMENT",
            ["texts[0]", "'de'", "no route"],
        ),
        (lambda c: c.summarize("  "), "INVALID_ARGUMENT", ["text", "empty"]),
        (lambda c: c.summarize("Hello.", source="en", to="ja"), "INVALID_ARGUMENT", ["ja"]),
        (
            lambda c: c.summarize("Olá.", source="pt", max_words=5000),
            "INVALID_ARGUMENT",
            ["max_words"],
        ),
        (lambda c: c.detect(""), "INVALID_ARGUMENT", ["text"]),
        (
            lambda c: c.translate("Olá.", to="en", source="pt", mime_type="application/pdf"),
            "INVALID_ARGUMENT",
            ["mime_type"],
        ),
    ],
)
def test_errors_name_the_field(client, call, code, words):
    with pytest.raises(dragoman.DragomanError) as excinfo:
        call(client)
    assert codes_of(excinfo) == getattr(grpc.StatusCode, code)
    for word in words:
        assert word in excinfo.value.message


def test_size_limits():
    config = make_config(
        [copy_model("copy-pt-en", "pt-en")],
        max_texts_per_request=3,
        max_chars_per_text=50,
        max_chars_per_request=80,
        warmup=False,
    )
    with BackgroundServer(config) as running, dragoman.Client(running.address) as c:
        for call, words in [
            (lambda: c.translate(["a"] * 4, to="en", source="pt"), ["texts", "limit is 3"]),
            (lambda: c.translate("x" * 51, to="en", source="pt"), ["texts[0]", "limit is 50"]),
            (
                lambda: c.translate(["x" * 45, "y" * 45], to="en", source="pt"),
                ["texts", "limit is 80"],
            ),
        ]:
            with pytest.raises(dragoman.DragomanError) as excinfo:
                call()
            assert excinfo.value.code == grpc.StatusCode.INVALID_ARGUMENT
            assert all(w in excinfo.value.message for w in words)


def test_model_that_failed_to_load_is_failed_precondition_with_reason(tmp_path):
    config = make_config(
        [
            copy_model("copy-pt-en", "pt-en"),
            {
                "name": "broken",
                "task": "translation",
                "source": str(tmp_path / "nowhere"),
                "languages": ["en-pt"],
            },
            {
                "name": "offline-hub",
                "task": "translation",
                "source": "Helsinki-NLP/opus-mt-en-de",
                "languages": ["en-de"],
            },
        ],
        offline=True,
        warmup=False,
    )
    with BackgroundServer(config) as running, dragoman.Client(running.address) as c:
        models = {m.name: m for m in c.models()}
        assert models["copy-pt-en"].state == "ready"
        assert models["broken"].state == "failed"
        assert "does not exist" in models["broken"].error and "nowhere" in models["broken"].error
        assert models["offline-hub"].state == "failed"
        assert "dragoman models pull" in models["offline-hub"].error
        assert "\n" not in models["offline-hub"].error
        with pytest.raises(dragoman.DragomanError) as excinfo:
            c.translate("Hello.", to="pt", source="en")
        # Permanent until the config is fixed: FAILED_PRECONDITION, which clients do not retry.
        assert excinfo.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert "broken" in excinfo.value.message and "does not exist" in excinfo.value.message
        assert c.translate("Olá.", to="en", source="pt")[0].text == "Olá."
        assert c.health() == "SERVING"


def test_config_file_env_and_flags(tmp_path, monkeypatch):
    path = tmp_path / "dragoman.toml"
    path.write_text(
        f'[server]\nport = 7000\nthreads = 1\n\n[[models]]\nname = "m"\ntask = "translation"\n'
        f'source = "{COPY_MODEL}"\nlanguages = ["pt-en", "pt_BR:en"]\n'
    )
    config = load_config(
        path, env={"DRAGOMAN_PORT": "7001", "DRAGOMAN_OFFLINE": "yes"}, overrides={"threads": 2}
    )
    assert (config.server.port, config.server.offline, config.server.threads) == (7001, True, 2)
    assert config.models[0].pairs == (("pt", "en"), ("pt-BR", "en"))


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"models": []}, ["no [[models]]"]),
        ({"server": {"prot": 1}, "models": [{}]}, ["server.prot"]),
        ({"server": {"port": "x"}, "models": [{}]}, ["port"]),
        (
            {"models": [{"name": "a", "task": "tr", "source": "s", "languages": ["pt-en"]}]},
            ["task"],
        ),
        (
            {
                "models": [
                    {"name": "a", "task": "translation", "source": "s", "languages": ["pten"]}
                ]
            },
            ["pten"],
        ),
        ({"models": [{"name": "a", "task": "translation", "source": "s"}]}, ["languages"]),
        (
            {
                "models": [
                    {
                        "name": "a",
                        "task": "summarization",
                        "source": "s",
                        "languages": ["en"],
                        "colour": 1,
                    }
                ]
            },
            ["colour"],
        ),
    ],
)
def test_config_errors_name_the_setting(data, words):
    from dragoman_server.errors import ConfigError

    with pytest.raises(ConfigError) as excinfo:
        Config.from_dict(data)
    assert all(w in str(excinfo.value) for w in words)


def test_default_config_ships_real_hub_models():
    config = load_config(env={})
    tasks = {(m.task, lang) for m in config.models for lang in m.languages}
    assert ("translation", "pt-en") in tasks and ("translation", "en-pt") in tasks
    assert ("summarization", "en") in tasks
    assert all("/" in m.source for m in config.models)


def test_serve_with_bad_config_is_one_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n")
    run = subprocess.run(
        [sys.executable, "-m", "dragoman", "serve", "--config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "invalid TOML" in run.stderr


def test_generated_protobuf_code_is_up_to_date(tmp_path):
    """scripts/gen_protos.py output (the code, and the service config the client loads) must
    match the checked-in client/dragoman/v1."""
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), str(tmp_path)], check=True
    )
    checked_in = ROOT / "client" / "dragoman" / "v1"
    generated = sorted(p.name for p in (tmp_path / "dragoman" / "v1").iterdir())
    assert generated == [
        "dragoman_descriptor.binpb",
        "dragoman_pb2.py",
        "dragoman_pb2.pyi",
        "dragoman_pb2_grpc.py",
        "service_config.json",
    ]
    for name in generated:
        assert (tmp_path / "dragoman" / "v1" / name).read_bytes() == (
            checked_in / name
        ).read_bytes(), f"{name} is stale: run python scripts/gen_protos.py"


def test_readme_settings_table_matches_the_settings():
    """The README's settings table is the one settings.py renders: no setting undocumented."""
    from dragoman_server.settings import settings_table

    readme = (ROOT / "README.md").read_text()
    assert settings_table() in readme, "README settings table is stale: paste settings_table()"
