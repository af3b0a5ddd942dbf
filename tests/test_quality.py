"""`dragoman quality` end to end on the tiny models, through `dragoman.Client` (plain, TLS and
API keys), and summaries. The runtime output checks are in test_output_checks.py."""

import json
from pathlib import Path

import pytest

from conftest import COPY_MODEL, needs_copy_model
from dragoman_server import quality

DATA = Path(__file__).parent / "data" / "quality"


def test_readers_and_scores():
    sources, references = quality.read_tsv(DATA / "pt-en.tsv")
    assert len(sources) == len(references) == 20
    texts, summaries = quality.read_jsonl(DATA / "summaries-en.jsonl")
    assert len(texts) == len(summaries) == 3
    perfect = quality.translation_scores(references, references)
    assert perfect == {"bleu": 100.0, "chrf": 100.0}
    assert quality.rouge_scores(summaries, summaries)["rouge2"] == 100.0


def test_bad_arguments(tmp_path, capsys):
    assert quality.main([]) == 2
    bad = tmp_path / "bad.tsv"
    bad.write_text("no tab here\n", "utf-8")
    assert quality.main(["--server", "127.0.0.1:1", "--translation-set", f"pt-en={bad}"]) == 2


@needs_copy_model
def test_quality_command_on_tiny_models(tmp_path, tiny_models, capsys):
    config = tmp_path / "quality.toml"
    config.write_text(
        f"""
[server]
warmup = false
threads = 2

[[models]]
name = "copy-pt-en"
task = "translation"
source = "{COPY_MODEL}"
languages = ["pt-en"]

[[models]]
name = "tiny-summarizer"
task = "summarization"
source = "{tiny_models["bart"]}"
languages = ["en"]
""",
        "utf-8",
    )
    out = tmp_path / "quality.json"
    code = quality.main(
        [
            "--config",
            str(config),
            "--translation-set",
            f"pt-en={DATA / 'pt-en.tsv'}",
            "--summary-set",
            f"en={DATA / 'summaries-en.jsonl'}",
            "--max-words",
            "20",
            "--limit",
            "5",
            "--json",
            str(out),
        ]
    )
    printed = capsys.readouterr().out
    print(printed)
    assert code == 0
    assert "translation pt-en" in printed and "rouge2" in printed
    results = json.loads(out.read_text("utf-8"))
    assert [r["size"] for r in results] == [5, 3]
    assert set(results[0]["metrics"]) == {"bleu", "chrf"}
    assert results[0]["model"] == "copy-pt-en"
    # The copy model "translates" pt into pt: some character overlap with English, little BLEU.
    assert 0 <= results[0]["metrics"]["bleu"] < 30 and results[0]["metrics"]["chrf"] > 0
    assert set(results[1]["metrics"]) == {"rouge1", "rouge2", "rougeLsum"}


def test_against_a_running_server(server, capsys):
    pytest.importorskip("sacrebleu")
    code = quality.main(
        [
            "--server",
            server.address,
            "--summary-set",
            f"en={DATA / 'summaries-en.jsonl'}",
            "--limit",
            "1",
        ]
    )
    assert code == 0 and "summaries en" in capsys.readouterr().out


# -- summaries: cross-lingual paths, length and format (tiny random BART: shapes, not content) ----

ARTICLE_PT = (Path(__file__).parent / "data" / "articles" / "parlamento.txt").read_text("utf-8")


def _summarize(address, **fields):
    import grpc

    from dragoman.v1 import dragoman_pb2 as pb
    from dragoman.v1 import dragoman_pb2_grpc as pb_grpc

    with grpc.insecure_channel(address) as channel:
        return pb_grpc.DragomanStub(channel).Summarize(pb.SummarizeRequest(**fields))


@needs_copy_model
def test_summary_paths(server):
    same = _summarize(server.address, text=ARTICLE_PT, source_language="pt", max_words=15)
    assert same.path == "summarize" and list(same.models) == ["tiny-summarizer"]
    assert same.target_language == "pt"
    # A summariser for the source and a route: only the short summary is translated.
    cross = _summarize(
        server.address, text=ARTICLE_PT, source_language="pt", target_language="en", max_words=15
    )
    assert cross.path == "summarize-then-translate"
    assert list(cross.models) == ["tiny-summarizer", "copy-pt-en"]
    assert cross.target_language == "en"
    # Through a pivot: pt summary, then pt->en->de.
    pivot = _summarize(
        server.address, text=ARTICLE_PT, source_language="pt", target_language="de", max_words=15
    )
    assert pivot.path == "summarize-then-translate"
    assert list(pivot.models) == ["tiny-summarizer", "copy-pt-en", "copy-en-de"]


@needs_copy_model
def test_translate_then_summarize(tiny_models):
    from conftest import copy_model, make_config
    from dragoman_server.server import BackgroundServer

    summariser = {
        "name": "sum-en",
        "task": "summarization",
        "source": str(tiny_models["bart"]),
        "languages": ["en"],
    }
    config = make_config([copy_model("copy-pt-en", "pt-en"), summariser], warmup=False)
    with BackgroundServer(config) as running:
        result = _summarize(
            running.address, text=ARTICLE_PT, source_language="pt", target_language="en"
        )
        assert result.path == "translate-then-summarize"
        assert list(result.models) == ["copy-pt-en", "sum-en"]


def test_summary_length_and_bullets(server):
    from dragoman.v1 import dragoman_pb2 as pb

    text = Path(__file__).parent.joinpath("data", "quality", "summaries-en.jsonl").read_text()
    text = " ".join(json.loads(line)["text"] for line in text.splitlines())
    for max_words in (5, 12):
        result = _summarize(server.address, text=text, source_language="en", max_words=max_words)
        assert 0 < len(result.summary.split()) <= max_words
    short = _summarize(
        server.address, text=text, source_language="en", length=pb.SUMMARY_LENGTH_SHORT
    )
    assert len(short.summary.split()) <= 40
    bullets = _summarize(
        server.address,
        text=text,
        source_language="en",
        max_words=30,
        format=pb.SUMMARY_FORMAT_BULLETS,
    )
    lines = bullets.summary.splitlines()
    assert lines and all(line.startswith("- ") for line in lines)


def _quality_cli(*args: str, env_extra: dict[str, str]):
    import os
    import subprocess
    import sys

    from conftest import ROOT

    env = {**os.environ, **env_extra}
    return subprocess.run(
        [sys.executable, "-m", "dragoman", "quality", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env=env,
    )


def test_sacrebleu_test_set_through_the_cli(server, tmp_path):
    """`dragoman quality --sacrebleu-set` reads sacrebleu's own test-set files (here placed in
    $SACREBLEU beforehand, as a first download would leave them, so nothing is fetched). The copy
    model returns the Portuguese source, so with the source as reference BLEU must be 100."""
    pytest.importorskip("sacrebleu")
    sources, _ = quality.read_tsv(DATA / "pt-en.tsv")
    folder = tmp_path / "mtedx" / "test"
    folder.mkdir(parents=True)
    (folder / "mtedx_test.pt-en.src").write_text("\n".join(sources[:6]) + "\n", "utf-8")
    (folder / "mtedx_test.pt-en.ref").write_text("\n".join(sources[:6]) + "\n", "utf-8")
    out = tmp_path / "q.json"
    run = _quality_cli(
        "--server",
        server.address,
        "--sacrebleu-set",
        "mtedx/test:pt-en",
        "--model",
        "copy-pt-en",
        "--json",
        str(out),
        env_extra={"SACREBLEU": str(tmp_path)},
    )
    assert run.returncode == 0, run.stderr
    [result] = json.loads(out.read_text("utf-8"))
    assert result["name"] == "translation pt-en (sacrebleu mtedx/test)"
    assert result["size"] == 6 and result["metrics"]["bleu"] == 100.0


@pytest.mark.parametrize(
    ("spec", "named"),
    [("no-such-set:pt-en", "no-such-set"), ("mtedx/test:pt-ja", "pt-ja"), ("mtedx", "NAME:PAIR")],
)
def test_bad_sacrebleu_set_is_a_usage_error(spec, named, tmp_path):
    pytest.importorskip("sacrebleu")
    run = _quality_cli(
        "--server", "127.0.0.1:1", "--sacrebleu-set", spec, env_extra={"SACREBLEU": str(tmp_path)}
    )
    assert run.returncode == 2 and named in run.stderr


@needs_copy_model
def test_against_a_server_with_tls_and_an_api_key(tmp_path, capsys):
    """`--server` reaches a server that wants TLS (mutual) and an API key, as the client does;
    before, the command opened an insecure channel without metadata and could not."""
    from test_auth_tls import _certificates

    from conftest import copy_model, make_config
    from dragoman_server.server import BackgroundServer

    certs = _certificates(tmp_path)
    key, cert = certs["server"]
    client_key, client_cert = certs["client"]
    config = make_config(
        [copy_model("copy-pt-en", "pt-en")],
        warmup=False,
        tls_cert=str(cert),
        tls_key=str(key),
        tls_client_ca=str(certs["ca"]),
        api_keys="quality-key",
    )
    tsv = tmp_path / "set.tsv"
    tsv.write_text("Olá, mundo.\tOlá, mundo.\nBom dia.\tBom dia.\n", "utf-8")
    with BackgroundServer(config) as running:
        common = ["--server", running.address, "--translation-set", f"pt-en={tsv}"]
        tls = ["--ca-cert", str(certs["ca"]), "--cert", str(client_cert), "--key", str(client_key)]
        assert quality.main([*common, *tls, "--api-key", "quality-key"]) == 0
        assert "bleu 100.00" in capsys.readouterr().out
        # Without the key: the server refuses, and the command says so (exit 1).
        assert quality.main([*common, *tls]) == 1
        assert "UNAUTHENTICATED" in capsys.readouterr().err.upper()
