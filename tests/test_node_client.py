"""Clients in other languages against the real in-process test server.

- tests/node/client.mjs: a Node.js client (@grpc/grpc-js + @grpc/proto-loader) that loads the
  .proto at run time, as any non-Python team would;
- buf curl: a reflection-only client (like grpcurl), which needs no .proto at all.

Uses the session fixture `server` from conftest.py (`copy-pt-en` copies its input, so a pt->en
translation equals the input; `tiny-summarizer` gives short non-empty summaries). tests/node is
installed with `npm ci` on first use. Without node/npm the tests skip, except in CI (CI=true).
"""

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NODE_DIR = ROOT / "tests" / "node"
CLIENT = NODE_DIR / "client.mjs"

TEXTS = [
    "Olá, mundo! A ação começou às 10h — “citação” e emoji 😀.",
    "Primeiro parágrafo da notícia.\n\nSegundo parágrafo, com mais detalhes.",
]


def unavailable(what: str) -> None:
    """Skip where a tool can't be had here; in CI (CI=true) the same is a failure."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what}: required in CI", pytrace=False)
    pytest.skip(what)


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """`npm ci` in tests/node, once per lockfile content (same scheme as test_deploy.py)."""
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        unavailable("node/npm not installed")
    lock_hash = hashlib.sha256((NODE_DIR / "package-lock.json").read_bytes()).hexdigest()
    stamp = NODE_DIR / "node_modules" / ".dragoman-lock-sha256"
    key = hashlib.sha256(bytes(NODE_DIR)).hexdigest()[:12]
    with open(Path(tempfile.gettempdir()) / f"dragoman-npm-{key}.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        if not (stamp.is_file() and stamp.read_text() == lock_hash):
            result = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=NODE_DIR,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if result.returncode != 0:
                pytest.fail(f"npm ci in {NODE_DIR} failed:\n{result.stdout}\n{result.stderr}")
            stamp.write_text(lock_hash)
    return NODE_DIR / "node_modules"


def run_node_client(address: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [shutil.which("node"), str(CLIENT), address, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )


def test_node_client_translates_streams_and_summarizes(server, node_modules):
    result = run_node_client(server.address, "--source", "pt", "--target", "en", *TEXTS)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)

    # Translate: one result per text, in order; copy-pt-en returns the input unchanged, so
    # this also proves UTF-8 (accents, typographic quotes, emoji) survives both directions.
    translations = out["translate"]["translations"]
    assert [t["text"] for t in translations] == TEXTS
    for translation in translations:
        assert translation["source_language"] == "pt"
        assert translation["source_language_detected"] is False
        assert "copy-pt-en" in translation["models"]

    # TranslateStream: per text, the paragraphs in order concatenate to the whole translation.
    for index, text in enumerate(TEXTS):
        chunks = [m for m in out["stream"] if m["text_index"] == index]
        assert [c["paragraph_index"] for c in chunks] == list(range(len(chunks)))
        assert "".join(c["text"] for c in chunks) == text
        assert [c["last"] for c in chunks] == [False] * (len(chunks) - 1) + [True]
    assert len([m for m in out["stream"] if m["text_index"] == 1]) == 2

    summary = out["summarize"]
    assert isinstance(summary["summary"], str) and summary["summary"].strip()
    assert "tiny-summarizer" in summary["models"]
    assert summary["source_language"] == "pt"
    assert summary["rounds"] >= 1


def test_node_client_gets_grpc_status_codes(server, node_modules):
    """A missing target language is INVALID_ARGUMENT in Node too, with a readable message."""
    result = run_node_client(server.address, "--target", "", "Olá")
    assert result.returncode == 1
    assert "INVALID_ARGUMENT" in result.stderr
    assert "target_language" in result.stderr


def buf_curl(node_modules: Path, url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(node_modules / ".bin" / "buf"), "curl", "--protocol", "grpc",
         "--http2-prior-knowledge", *args, url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
    )  # fmt: skip


def test_reflection_serves_the_contract_to_clients_without_the_proto(server, node_modules):
    """What `grpcurl -plaintext HOST:PORT list` / `... Translate` do, via buf curl."""
    base = f"http://{server.address}"
    listed = buf_curl(node_modules, base, "--list-services")
    assert listed.returncode == 0, listed.stderr
    assert {"dragoman.v1.Dragoman", "grpc.health.v1.Health"} <= set(listed.stdout.split())

    health = buf_curl(node_modules, f"{base}/grpc.health.v1.Health/Check")
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout) == {"status": "SERVING"}

    request = {"texts": [TEXTS[0]], "sourceLanguage": "pt", "targetLanguage": "en"}
    translated = buf_curl(
        node_modules, f"{base}/dragoman.v1.Dragoman/Translate", "-d", json.dumps(request)
    )
    assert translated.returncode == 0, translated.stderr
    assert json.loads(translated.stdout)["translations"][0]["text"] == TEXTS[0]
