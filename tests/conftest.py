"""Shared fixtures: real servers on ephemeral 127.0.0.1 ports, serving real (tiny or copy) models."""

import os

# huggingface_hub reads HF_HUB_OFFLINE once, at import: set it before anything imports it.
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the Hub

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from dragoman_server.server import BackgroundServer  # noqa: E402
from dragoman_server.settings import Config  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
COPY_MODEL = ROOT.parent / "shared" / "models" / "copy-pt-en"

needs_copy_model = pytest.mark.skipif(
    not COPY_MODEL.is_dir(), reason="../shared/models/copy-pt-en is not beside this checkout"
)


def make_config(models: list[dict], **server) -> Config:
    """A Config for tests: loopback, ephemeral port, small queue delay, plus `server` overrides."""
    settings = {"host": "127.0.0.1", "port": 0, "threads": 2, "max_queue_delay_ms": 2, **server}
    return Config.from_dict({"server": settings, "models": models})


def copy_model(name: str, pair: str) -> dict:
    return {"name": name, "task": "translation", "source": str(COPY_MODEL), "languages": [pair]}


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Tiny random Marian and BART models saved with save_pretrained (built once per session)."""
    from model_factory import build_bart, build_marian

    root = tmp_path_factory.mktemp("models")
    return {
        "marian": build_marian(root / "tiny-marian"),
        "bart": build_bart(root / "tiny-bart"),
    }


@pytest.fixture(scope="session")
def server(tiny_models) -> BackgroundServer:
    """The main test server.

    - copy-pt-en: translation pt-en through ../shared/models/copy-pt-en (output == input);
    - copy-en-de: translation en-de through the same copy model (so pt->de pivots via en);
    - tiny-marian: translation en-pt, a tiny random Marian (garbage but real output);
    - tiny-summarizer: summarisation en and pt, a tiny random BART.
    """
    if not COPY_MODEL.is_dir():
        pytest.skip("../shared/models/copy-pt-en is missing")
    config = make_config(
        [
            copy_model("copy-pt-en", "pt-en"),
            copy_model("copy-en-de", "en-de"),
            {
                "name": "tiny-marian",
                "task": "translation",
                "source": str(tiny_models["marian"]),
                "languages": ["en-pt"],
            },
            {
                "name": "tiny-summarizer",
                "task": "summarization",
                "source": str(tiny_models["bart"]),
                "languages": ["en", "pt"],
            },
        ]
    )
    with BackgroundServer(config) as running:
        assert running.ready, "no model loaded"
        yield running
