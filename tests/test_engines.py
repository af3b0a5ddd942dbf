"""Both backends (transformers and CTranslate2) pass the same engine tests."""

import time

import pytest

from conftest import copy_model, make_config, needs_copy_model
from dragoman_server.engines import GenerationParams, load_engine
from dragoman_server.server import BackgroundServer

BACKENDS = ["torch", "ctranslate2"]
SENTENCES = [
    "O Governo aprovou ontem o Orçamento do Estado.",
    "A inflação abrandou para 2,1% em setembro.",
    "«Não vamos aumentar os impostos», garantiu o ministro.",
    "O Benfica venceu o Sporting por 2-1.",
    "Um sismo de magnitude 4,7 foi sentido em Lisboa.",
]


@pytest.fixture(scope="module", autouse=True)
def ct2_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("DRAGOMAN_CT2_CACHE", str(tmp_path_factory.mktemp("ct2")))
    yield
    mp.undo()


def _engine(model: dict, backend: str, **extra):
    config = make_config([{**model, "backend": backend, **extra}])
    return load_engine(config.models[0], config.server)


_engines: dict = {}


def engine_for(kind: str, backend: str, tiny_models=None, **extra):
    key = (kind, backend, tuple(sorted(extra.items())))
    if key not in _engines:
        if kind == "copy":
            model = copy_model("copy", "pt-en")
        else:
            model = {
                "name": kind,
                "task": "summarization" if kind == "bart" else "translation",
                "source": str(tiny_models[kind]),
                "languages": ["en"] if kind == "bart" else ["en-pt"],
            }
        _engines[key] = _engine(model, backend, **extra)
    return _engines[key]


@needs_copy_model
@pytest.mark.parametrize("backend", BACKENDS)
def test_copy_model_is_exact_and_keeps_batch_order(backend):
    engine = engine_for("copy", backend)
    params = GenerationParams("pt", "en")
    out = engine.generate(SENTENCES, params)
    assert [g.text for g in out] == SENTENCES
    assert [g.input_tokens for g in out] == engine.count_tokens(SENTENCES)
    assert all(g.output_tokens > 0 for g in out)
    # order is the caller's, whatever the lengths
    shuffled = SENTENCES[::-1]
    assert [g.text for g in engine.generate(shuffled, params)] == shuffled


@needs_copy_model
@pytest.mark.parametrize("compute_type", ["int8", "float32"])
def test_ct2_copy_exact_in_each_compute_type(compute_type):
    engine = engine_for("copy", "ctranslate2", compute_type=compute_type)
    assert engine.compute_type == compute_type
    out = engine.generate(SENTENCES, GenerationParams("pt", "en"))
    assert [g.text for g in out] == SENTENCES


@needs_copy_model
@pytest.mark.parametrize("backend", BACKENDS)
def test_window_is_enforced_not_truncated(backend):
    engine = engine_for("copy", backend)
    assert engine.max_input_tokens == 64
    long_text = " ".join(SENTENCES * 3)
    assert engine.count_tokens([long_text])[0] > engine.max_input_tokens
    with pytest.raises(ValueError, match="window"):
        engine.generate([SENTENCES[0], long_text], GenerationParams("pt", "en"))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["marian", "bart"])
def test_tiny_models(tiny_models, backend, kind):
    engine = engine_for(kind, backend, tiny_models)
    texts = ["The government approved the budget.", "Oil prices climbed more than 3%.", "Hi."]
    counts = engine.count_tokens(texts)
    assert all(0 < c <= engine.max_input_tokens for c in counts)
    params = GenerationParams("en", "pt" if kind == "marian" else "en", max_new_tokens=8)
    out = engine.generate(texts, params)
    assert len(out) == 3
    assert [g.input_tokens for g in out] == counts
    assert all(g.text and 0 < g.output_tokens <= 9 for g in out)
    # a batch gives each input what it gets alone (order kept)
    assert engine.generate(texts[1:2], params)[0].text == out[1].text


@pytest.mark.parametrize("backend", BACKENDS)
def test_fixed_length_generation(tiny_models, backend):
    engine = engine_for("marian", backend, tiny_models)
    params = GenerationParams("en", "pt", max_new_tokens=6, min_new_tokens=6)
    out = engine.generate(["Hello world.", "Another sentence."], params)
    assert all(5 <= g.output_tokens <= 7 for g in out)


@needs_copy_model
def test_should_stop_abandons_a_ct2_batch():
    engine = engine_for("copy", "ctranslate2")
    calls = []

    def stop():
        calls.append(1)
        return True

    out = engine.generate(SENTENCES, GenerationParams("pt", "en"), should_stop=stop)
    assert calls and len(out) == len(SENTENCES)
    assert all(g.output_tokens <= 2 for g in out)


@needs_copy_model
def test_conversion_is_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("DRAGOMAN_CT2_CACHE", str(tmp_path))
    model = copy_model("copy", "pt-en")
    _engine(model, "ctranslate2", compute_type="float32")
    (converted,) = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    mtime = (converted / "model.bin").stat().st_mtime_ns
    started = time.perf_counter()
    engine = _engine(model, "ctranslate2", compute_type="float32")
    assert engine.model_dir == converted
    assert (converted / "model.bin").stat().st_mtime_ns == mtime
    assert list(tmp_path.iterdir()) == [converted]  # no temporary directory left behind
    assert time.perf_counter() - started < 5


@needs_copy_model
def test_server_with_ct2_translates_an_article_exactly():
    import dragoman

    paragraphs = [
        " ".join(SENTENCES[:3]),
        " ".join(SENTENCES[3:]) + " " + " ".join(SENTENCES[:2]),
        SENTENCES[2],
    ]
    article = "\n\n".join(paragraphs)
    config = make_config([{**copy_model("copy-pt-en", "pt-en"), "backend": "ctranslate2"}])
    with BackgroundServer(config) as running:
        assert running.ready
        with dragoman.Client(running.address) as client:
            result = client.translate([article], to="en", source="pt")
    assert result[0].text == article
