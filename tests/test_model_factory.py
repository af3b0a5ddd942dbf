"""The tiny model builders in tests/model_factory.py: real, loadable, deterministic models."""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import socket
import subprocess
import sys
import time
import warnings

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("sentencepiece")
pytest.importorskip("tokenizers")

import huggingface_hub.constants  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer  # noqa: E402

import model_factory as mf  # noqa: E402  (tests/ is on sys.path, as conftest.py relies on)

# Two Portuguese sentences of different lengths: the batch needs padding, and the second one is
# longer than the default windows, so it needs truncation too.
PT_BATCH = [
    "O Governo aprovou o orçamento.",
    "Segundo o INE, a inflação abrandou para 2,1% em setembro, o valor mais baixo desde 2021 — "
    "«uma boa notícia» para as famílias, disse a Dra. Helena Marques ao “Público”.",
]

UNICODE_SAMPLES = [
    "O Governo aprovou o orçamento.",
    "a  b\nc\td",
    "naïve café — “quoted” «citação» 10 000 € ½ 🚀👩‍👩‍👧 日本語 עברית e\u0301",
    "Zürich, Kraków, Ærøskøbing, Þórshöfn: ¿qué? ¡sí!",
    "\u200bzero\u200dwidth\ufeff",
]

SPECS = {
    "marian": dict(
        build=mf.build_marian,
        tokenizer_cls=transformers.MarianTokenizer,
        model_cls=transformers.MarianMTModel,
        model_max_length=48,
    ),
    "bart": dict(
        build=mf.build_bart,
        tokenizer_cls=transformers.BartTokenizer,  # an alias of RobertaTokenizer in transformers 5
        model_cls=transformers.BartForConditionalGeneration,
        model_max_length=80,
    ),
    "t5": dict(
        build=mf.build_t5,
        tokenizer_cls=transformers.T5Tokenizer,
        model_cls=transformers.T5ForConditionalGeneration,
        model_max_length=48,
    ),
}
NAMES = sorted(SPECS)

MAX_DIR_BYTES = 2 * 1024 * 1024


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No network: the Hub in offline mode, and any internet socket connection refused."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads the variable once, at import: set the constant it derived as well.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    real_connect = socket.socket.connect

    def guarded_connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise AssertionError(f"network access attempted: {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, pathlib.Path]:
    """Each model built once with default arguments (loading is what most tests look at)."""
    root = tmp_path_factory.mktemp("models")
    return {name: SPECS[name]["build"](root / name) for name in NAMES}


def load(path: pathlib.Path):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*sacremoses", category=UserWarning)
        tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSeq2SeqLM.from_pretrained(path).eval()
    return tokenizer, model


def generate(tokenizer, model, texts: list[str]) -> tuple[torch.Tensor, list[str]]:
    batch = tokenizer(texts, return_tensors="pt", padding=True, truncation=True)
    with torch.inference_mode():
        out = model.generate(**batch)
    return out, tokenizer.batch_decode(out, skip_special_tokens=True)


def dir_digest(path: pathlib.Path) -> dict[str, str]:
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(path.iterdir())}


def dir_size(path: pathlib.Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


@pytest.mark.parametrize("name", NAMES)
def test_loads_through_auto_classes(built, name):
    spec = SPECS[name]
    tokenizer, model = load(built[name])

    assert isinstance(tokenizer, spec["tokenizer_cls"]), type(tokenizer)
    assert type(model) is spec["model_cls"], type(model)
    assert tokenizer.model_max_length == spec["model_max_length"]
    saved = json.loads((built[name] / "tokenizer_config.json").read_text("utf-8"))
    assert saved["model_max_length"] == spec["model_max_length"]
    assert model.config.vocab_size == len(tokenizer)
    assert model.config.pad_token_id == tokenizer.pad_token_id
    assert model.config.eos_token_id == tokenizer.eos_token_id
    positions = getattr(model.config, "max_position_embeddings", None)
    assert positions is None or tokenizer.model_max_length <= positions


@pytest.mark.parametrize("name", NAMES)
def test_generation_config(built, name):
    tokenizer, model = load(built[name])
    saved = json.loads((built[name] / "generation_config.json").read_text("utf-8"))
    assert saved["num_beams"] == 1
    assert saved["do_sample"] is False
    assert saved["eos_token_id"] == tokenizer.eos_token_id
    assert saved["pad_token_id"] == tokenizer.pad_token_id
    assert saved["decoder_start_token_id"] == model.config.decoder_start_token_id
    assert saved["max_length"] == 24 + 1  # max_new_tokens + the decoder start token
    assert saved["min_length"] > 1
    assert tokenizer.eos_token_id not in saved["suppress_tokens"]
    assert tokenizer.pad_token_id in saved["suppress_tokens"]
    gen = model.generation_config
    assert (gen.num_beams, gen.max_length, gen.decoder_start_token_id) == (
        1,
        25,
        saved["decoder_start_token_id"],
    )


@pytest.mark.parametrize("name", NAMES)
def test_generates_a_padded_batch(built, name):
    tokenizer, model = load(built[name])
    batch = tokenizer(PT_BATCH, return_tensors="pt", padding=True, truncation=True)
    assert batch["input_ids"].shape[0] == 2
    assert batch["input_ids"].shape[1] <= tokenizer.model_max_length
    lengths = batch["attention_mask"].sum(dim=1).tolist()
    assert lengths[0] < lengths[1]  # the first row is padded
    assert (batch["input_ids"][0, lengths[0] :] == tokenizer.pad_token_id).all()

    out, texts = generate(tokenizer, model, PT_BATCH)
    assert out.dim() == 2 and out.shape[0] == 2
    assert out.shape[1] <= model.generation_config.max_length
    assert (out[:, 0] == model.config.decoder_start_token_id).all()
    assert all(isinstance(t, str) and t.strip() for t in texts), texts
    # The output depends on the input, and padding does not change it.
    assert texts[0] != texts[1]
    for text, expected in zip(PT_BATCH, texts, strict=True):
        assert generate(tokenizer, model, [text])[1] == [expected]


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_files_and_outputs(tmp_path, name):
    build = SPECS[name]["build"]
    first, second, other = (
        build(tmp_path / "a"),
        build(tmp_path / "b"),
        build(tmp_path / "c", seed=1),
    )

    assert dir_digest(first) == dir_digest(second)
    assert dir_digest(first)["model.safetensors"] != dir_digest(other)["model.safetensors"]
    assert generate(*load(first), PT_BATCH)[1] == generate(*load(second), PT_BATCH)[1]


@pytest.mark.parametrize("name", NAMES)
def test_small_and_quick_to_build(tmp_path, name):
    build = SPECS[name]["build"]
    build(tmp_path / "warm-up")  # the first build in a process pays for importing transformers
    start = time.perf_counter()
    path = build(tmp_path / "timed")
    elapsed = time.perf_counter() - start

    assert elapsed < 2.0, f"{name} took {elapsed:.2f}s to build"
    assert dir_size(path) < MAX_DIR_BYTES


@pytest.mark.parametrize("name", ["marian", "bart"])
def test_tokenizer_round_trips_any_text(built, name):
    tokenizer, _ = load(built[name])
    for text in UNICODE_SAMPLES:
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.unk_token_id not in ids, text
        decoded = tokenizer.decode(ids, skip_special_tokens=True)
        # MarianTokenizer.decode strips the outer whitespace; the rest must survive exactly.
        assert decoded == (text.strip() if name == "marian" else text)


def test_t5_tokenizer_never_crashes_and_has_prefix_convention(built):
    tokenizer, model = load(built["t5"])
    for text in UNICODE_SAMPLES:
        ids = tokenizer(text)["input_ids"]
        assert ids[-1] == tokenizer.eos_token_id
        assert isinstance(tokenizer.decode(ids, skip_special_tokens=True), str)
    params = model.config.task_specific_params["summarization"]
    assert params["prefix"] == mf.T5_SUMMARIZE_PREFIX == "summarize: "
    prefix_ids = tokenizer(params["prefix"], add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in prefix_ids
    assert tokenizer.decode(prefix_ids) == "summarize:"
    _, texts = generate(tokenizer, model, [params["prefix"] + t for t in PT_BATCH])
    assert all(t.strip() for t in texts)


@pytest.mark.parametrize("name", NAMES)
def test_custom_window(tmp_path, name):
    path = SPECS[name]["build"](tmp_path / name, model_max_length=16, max_new_tokens=5)
    tokenizer, model = load(path)
    assert tokenizer.model_max_length == 16
    batch = tokenizer(PT_BATCH, return_tensors="pt", padding=True, truncation=True)
    assert batch["input_ids"].shape[1] == 16
    out, texts = generate(tokenizer, model, PT_BATCH)
    assert out.shape[1] <= 6
    assert all(t.strip() for t in texts)


def test_marian_file_layout(built):
    path = built["marian"]
    names = {f.name for f in path.iterdir()}
    assert {"source.spm", "target.spm", "vocab.json", "tokenizer_config.json"} <= names
    assert {"config.json", "generation_config.json", "model.safetensors"} <= names
    config = json.loads((path / "tokenizer_config.json").read_text("utf-8"))
    assert config["tokenizer_class"] == "MarianTokenizer"
    vocab = json.loads((path / "vocab.json").read_text("utf-8"))
    assert (vocab["<pad>"], vocab["</s>"], vocab["<unk>"]) == (0, 1, 2)
    model_config = json.loads((path / "config.json").read_text("utf-8"))
    assert model_config["model_type"] == "marian"
    assert model_config["vocab_size"] == len(vocab)


def test_corpus_is_news_like():
    assert 30 <= len(mf.NEWS_CORPUS) <= 60
    text = "\n".join(mf.NEWS_CORPUS)
    for needle in ("«", "»", "“", "”", "ç", "ã", "é", "%", "Dr.", "U.S."):
        assert needle in text, needle


def test_loads_in_a_fresh_offline_process(built, tmp_path):
    """Only HF_HUB_OFFLINE=1 and an empty Hugging Face cache: loading must not need the Hub."""
    script = (
        "import sys, warnings\n"
        "warnings.simplefilter('ignore')\n"
        "from transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n"
        "for path in sys.argv[1:]:\n"
        "    tok = AutoTokenizer.from_pretrained(path)\n"
        "    model = AutoModelForSeq2SeqLM.from_pretrained(path)\n"
        "    out = model.generate(**tok(['Olá, mundo.'], return_tensors='pt'))\n"
        "    text = tok.batch_decode(out, skip_special_tokens=True)[0]\n"
        "    assert text.strip(), path\n"
        "    print(type(tok).__name__, type(model).__name__)\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf-home"))
    env.pop("TRANSFORMERS_OFFLINE", None)
    result = subprocess.run(
        [sys.executable, "-c", script, *(str(built[name]) for name in NAMES)],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stdout.split("\n")[:3] == [
        f"{SPECS[name]['tokenizer_cls'].__name__} {SPECS[name]['model_cls'].__name__}"
        for name in NAMES
    ]
