"""The `dragoman` command line against the real server: in process (`dragoman.cli.main`) and as
`python -m dragoman` subprocesses."""

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import types

import pytest

from conftest import ROOT, needs_copy_model
from dragoman.cli import main

pytestmark = needs_copy_model

ARTICLE = (
    "Governo anuncia novas medidas para a habitação\n"
    "\n"
    "O governo anunciou hoje um conjunto de medidas para responder à crise da habitação.\n"
    "As medidas incluem apoios ao arrendamento para jovens e famílias com rendimentos baixos.\n"
)
SENTENCE = "O presidente da república falou ontem aos jornalistas em Lisboa sobre a economia."
CLIENT_ENV = {
    **os.environ,
    "PYTHONPATH": os.pathsep.join([str(ROOT / "client"), str(ROOT / "service")]),
}
SERVER_EXTRA = "dragoman serve needs the server extra: pip install 'dragoman[server]'"


@pytest.fixture
def article(tmp_path):
    path = tmp_path / "article.txt"
    path.write_text(ARTICLE, "utf-8")
    return path


@pytest.fixture
def stdin(monkeypatch):
    def feed(text: str) -> None:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(text.encode("utf-8"))))

    return feed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_cli(*args: str, stdin: str | None = None, env=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "dragoman", *args],
        input=stdin,
        env=env or CLIENT_ENV,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
    )


# -- translate -----------------------------------------------------------------------------------


def test_translate_a_file_prints_it_exactly(server, article, capsys):
    assert main(["translate", "--server", server.address, "--to", "en", str(article)]) == 0
    out, err = capsys.readouterr()
    assert out == ARTICLE and err == ""


def test_translate_stdin_adds_only_a_missing_final_newline(server, stdin, capsys):
    stdin(SENTENCE)
    assert main(["translate", "--server", server.address, "--to", "en", "--from", "pt"]) == 0
    assert capsys.readouterr().out == SENTENCE + "\n"
    stdin(SENTENCE + "\n\n")
    assert main(["translate", "--server", server.address, "--to", "en", "-"]) == 0
    assert capsys.readouterr().out == SENTENCE + "\n\n"


def test_translate_json_glossary_and_pivot(server, article, capsys):
    argv = ["translate", "--server", server.address, "--to", "de", "--from", "pt", "--json"]
    argv += ["--glossary", "habitação=housing", "--glossary", "Governo", str(article)]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["text"] == ARTICLE.replace("habitação", "housing")
    assert result["pivoted"] is True
    assert [hop["model"] for hop in result["route"]] == ["copy-pt-en", "copy-en-de"]
    assert result["applied_glossary"] == {"habitação": "housing", "Governo": ""}


def test_translate_stream_plain_and_json_lines(server, article, capsys):
    base = ["translate", "--server", server.address, "--to", "en", "--stream"]
    assert main([*base, str(article)]) == 0
    assert capsys.readouterr().out == ARTICLE
    assert main([*base, "--json", str(article)]) == 0
    chunks = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [c["paragraph_index"] for c in chunks] == list(range(len(chunks)))
    assert chunks[-1]["last"] is True
    assert "".join(c["text"] for c in chunks) == ARTICLE


def test_translate_html(server, stdin, capsys):
    html = "<p>Olá <b>Lisboa</b> &amp; Porto, uma cidade portuguesa.</p>"
    stdin(html)
    assert (
        main(["translate", "--server", server.address, "--to", "en", "--from", "pt", "--html"]) == 0
    )
    assert capsys.readouterr().out == html + "\n"


# -- the other commands --------------------------------------------------------------------------


def test_summarize(server, article, capsys):
    base = ["summarize", "--server", server.address]
    assert main([*base, "--from", "pt", "--length", "short", str(article)]) == 0
    out = capsys.readouterr().out
    assert out.strip() and out.endswith("\n")
    assert main([*base, "--bullets", "--max-words", "20", "--json", str(article)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["models"] == ["tiny-summarizer"] and summary["source_language"] == "pt"
    assert all(line.startswith("- ") for line in summary["summary"].splitlines())


def test_detect(server, stdin, capsys):
    stdin(SENTENCE)
    assert main(["detect", "--server", server.address]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    language, confidence = first.split("\t")
    assert language == "pt" and 0.5 < float(confidence) <= 1
    stdin(SENTENCE)
    assert main(["detect", "--server", server.address, "--json", "--max-results", "1"]) == 0
    [score] = json.loads(capsys.readouterr().out)
    assert score["language"] == "pt"


def test_models_list(server, capsys):
    assert main(["models", "list", "--server", server.address]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "TASK", "STATE", "BACKEND", "DEVICE", "LANGUAGES"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["copy-pt-en"][1:3] == ["translation", "ready"]
    assert rows["copy-pt-en"][-1] == "pt-en"
    assert rows["tiny-summarizer"][-1] == "en,pt"
    assert main(["models", "list", "--server", server.address, "--json"]) == 0
    models = json.loads(capsys.readouterr().out)
    assert {m["name"] for m in models} >= {"copy-pt-en", "copy-en-de", "tiny-summarizer"}


def test_health_and_the_server_from_the_environment(server, monkeypatch, capsys):
    monkeypatch.setenv("DRAGOMAN_SERVER", server.address)
    monkeypatch.setenv("DRAGOMAN_API_KEY", "some-key")
    assert main(["health"]) == 0
    assert capsys.readouterr().out == "SERVING\n"
    assert main(["health", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"status": "SERVING"}
    assert main(["health", "--service", "no.such.Service"]) == 1
    assert capsys.readouterr().out == "SERVICE_UNKNOWN\n"


# -- errors and exit codes -----------------------------------------------------------------------


def test_rpc_errors_exit_1_with_one_line(server, article, capsys):
    argv = ["translate", "--server", server.address, "--to", "en", "--model", "nope", str(article)]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: NOT_FOUND: ") and "nope" in err
    assert len(err.splitlines()) == 1
    argv = ["translate", "--server", server.address, "--to", "ja", "--from", "pt", str(article)]
    assert main(argv) == 1
    assert capsys.readouterr().err.startswith("error: INVALID_ARGUMENT: ")


def test_usage_errors_exit_2(server, tmp_path, capsys):
    assert main(["translate", "--server", server.address]) == 2  # no --to
    assert "--to" in capsys.readouterr().err
    assert main(["translate", "--to", "en", str(tmp_path / "missing.txt")]) == 2
    assert capsys.readouterr().err.startswith("error: cannot read ")
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00bad")
    assert main(["detect", "--server", server.address, str(binary)]) == 2
    assert "not UTF-8" in capsys.readouterr().err
    assert main(["summarize", "--length", "huge"]) == 2
    assert main(["models"]) == 2
    assert main([]) == 2
    assert main(["--help"]) == 0
    assert "translate" in capsys.readouterr().out
    assert main(["--version"]) == 0


def test_serve_and_pull_pass_their_arguments_through(monkeypatch):
    seen = []
    fake = types.ModuleType("dragoman_server.cli")
    fake.main = lambda argv: seen.append(argv) or 7
    monkeypatch.setitem(sys.modules, "dragoman_server.cli", fake)
    assert main(["serve", "--config", "x.toml", "--port", "5", "--help"]) == 7
    assert main(["models", "pull", "--config", "x.toml"]) == 7
    assert seen == [
        ["serve", "--config", "x.toml", "--port", "5", "--help"],
        ["pull", "--config", "x.toml"],
    ]


# -- as a subprocess -----------------------------------------------------------------------------


def test_python_m_dragoman_translates_stdin(server):
    done = run_cli("translate", "--server", server.address, "--to", "en", stdin=ARTICLE)
    assert done.returncode == 0, done.stderr
    assert done.stdout == ARTICLE
    done = run_cli(
        "translate", "--server", server.address, "--to", "en", "--model", "nope", stdin=SENTENCE
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: NOT_FOUND: ")
    assert "Traceback" not in done.stderr


BLOCK_SERVER = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("dragoman_server", "torch", "transformers"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
from dragoman.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize(
    ("argv", "label"),
    [(["serve", "--port", "0"], "dragoman serve"), (["models", "pull"], "dragoman models pull")],
)
def test_server_commands_without_the_server_extra(argv, label):
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_SERVER, *argv],
        env=CLIENT_ENV,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr == SERVER_EXTRA.replace("dragoman serve", label) + "\n"
    assert done.stdout == ""


def test_ctrl_c_exits_130_without_a_traceback():
    # Nothing listens: the call waits for the server (wait-for-ready) until interrupted.
    process = subprocess.Popen(
        [sys.executable, "-m", "dragoman", "translate", "--to", "en"],
        env={**CLIENT_ENV, "DRAGOMAN_SERVER": f"127.0.0.1:{free_port()}"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    process.stdin.write(ARTICLE)
    process.stdin.close()
    time.sleep(2.0)
    assert process.poll() is None
    process.send_signal(signal.SIGINT)
    try:
        code = process.wait(timeout=30)
    finally:
        process.kill()
    assert code == 130
    assert "Traceback" not in process.stderr.read()
