"""Multilingual models (M2M100, NLLB, mBART-50, multi-target Marian) get the right language tokens.

Tiny random-weight models with real tokenizers (tests/multilingual_factory.py) are loaded through
the real engine path, and the token ids that reach ``model.generate`` -- input ids and generated
ids -- are inspected. The factory bans every language token in the saved generation config, so a
generated sequence starts with a language token only when the engine forces it.
"""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import ROOT, make_config
from dragoman_server.engines import GenerationParams, load_engine
from dragoman_server.engines.multilingual import (
    ISO639_3,
    MBART50_CODES,
    NLLB_CODES,
    LanguageTokens,
)
from dragoman_server.server import BackgroundServer

PT_TEXTS = [
    "O Governo aprovou ontem o Orçamento do Estado.",
    "A inflação abrandou em setembro.",
    "O Benfica venceu o Sporting por 2-1 no Estádio da Luz.",
]
EN_TEXTS = [
    "The Federal Reserve held interest rates steady.",
    "Police arrested two men, according to a statement.",
]

# detected family -> its factory builder, its tokens for pt / en, tokenizer and model classes.
FAMILIES = {
    "m2m100": {
        "builder": "build_m2m100",
        "tokens": {"pt": "__pt__", "en": "__en__"},
        "tokenizer": "M2M100Tokenizer",
        "model": "M2M100ForConditionalGeneration",
    },
    "nllb": {
        "builder": "build_nllb",
        "tokens": {"pt": "por_Latn", "en": "eng_Latn"},
        "tokenizer": "NllbTokenizer",
        "model": "M2M100ForConditionalGeneration",
    },
    "mbart": {
        "builder": "build_mbart50",
        "tokens": {"pt": "pt_XX", "en": "en_XX"},
        "tokenizer": "MBart50Tokenizer",
        "model": "MBartForConditionalGeneration",
    },
}
TOKEN_FAMILIES = list(FAMILIES)


@pytest.fixture(scope="session")
def multilingual_models(tmp_path_factory) -> dict[str, Path]:
    """The four tiny multilingual models, built once per session."""
    import multilingual_factory as factory

    root = tmp_path_factory.mktemp("multilingual")
    models = {
        family: getattr(factory, spec["builder"])(root / family)
        for family, spec in FAMILIES.items()
    }
    models["marian"] = factory.build_multi_target_marian(root / "marian")
    return models


def model_dict(family: str, path: Path, **extra) -> dict:
    # A multi-target Marian has >>xx<< tokens for its targets only (here pt): en -> pt alone.
    languages = ["en-pt", "en:pt-BR"] if family == "marian" else ["pt-en", "en-pt"]
    return {
        "name": f"tiny-{family}",
        "task": "translation",
        "source": str(path),
        "languages": languages,
        **extra,
    }


_engines: dict = {}


def engine_for(family: str, models: dict[str, Path], **extra):
    """The engine, loaded through load_engine as the server does (cached per configuration)."""
    key = (family, repr(sorted(extra.items())))
    if key not in _engines:
        config = make_config([model_dict(family, models[family], **extra)])
        _engines[key] = load_engine(config.models[0], config.server)
    return _engines[key]


@pytest.fixture(scope="module", autouse=True)
def _close_engines():
    yield
    for engine in _engines.values():
        engine.close()
    _engines.clear()


class GenerateSpy:
    """Wraps ``engine.model.generate`` to record what the engine passes and gets back."""

    def __init__(self, model):
        self.calls: list[tuple[dict, object]] = []
        self._generate = model.generate

    def __call__(self, *args, **kwargs):
        output = self._generate(*args, **kwargs)
        self.calls.append((kwargs, output))
        return output

    @property
    def last(self) -> tuple[list[list[int]], list[list[int]], dict]:
        """Input ids (without padding), output ids and the kwargs of the latest call."""
        kwargs, output = self.calls[-1]
        ids, mask = kwargs["input_ids"].tolist(), kwargs["attention_mask"].tolist()
        inputs = [
            [i for i, m in zip(row, ms, strict=True) if m]
            for row, ms in zip(ids, mask, strict=True)
        ]
        return inputs, output.tolist(), kwargs


@pytest.fixture
def spy(monkeypatch):
    def attach(engine) -> GenerateSpy:
        recorder = GenerateSpy(engine.model)
        monkeypatch.setattr(engine.model, "generate", recorder)
        return recorder

    return attach


def token_id(engine, token: str) -> int:
    ids = engine.tokenizer.convert_tokens_to_ids([token])
    assert ids[0] != engine.tokenizer.unk_token_id, f"{token} is not in the vocabulary"
    return ids[0]


def all_language_ids(engine) -> set[int]:
    return {ids[0] for ids in engine.model.generation_config.bad_words_ids}


# --------------------------------------------------------------------------------------------------
# the factory: real tokenizer classes, language tokens in the vocabulary, loadable offline
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", TOKEN_FAMILIES)
def test_factory_models_load_offline_with_real_classes(multilingual_models, family):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    spec = FAMILIES[family]
    path = multilingual_models[family]
    size = sum(f.stat().st_size for f in path.iterdir())
    assert size < 5_000_000, f"{family} model is {size} bytes"
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForSeq2SeqLM.from_pretrained(path, local_files_only=True)
    assert type(tokenizer).__name__ == spec["tokenizer"]
    assert type(model).__name__ == spec["model"]
    assert model.config.vocab_size == len(tokenizer)
    vocab = tokenizer.get_vocab()
    for token in spec["tokens"].values():
        assert token in vocab
        # one token, and special: decoding with skip_special_tokens drops it, as in the real models
        assert tokenizer.convert_ids_to_tokens(vocab[token]) == token
        assert vocab[token] in tokenizer.all_special_ids
    # nothing is forced by the checkpoint itself: forcing has to come from the engine
    assert model.generation_config.forced_bos_token_id is None


def test_factory_is_deterministic(tmp_path):
    import multilingual_factory as factory

    for builder in (factory.build_nllb, factory.build_multi_target_marian):
        first, second = builder(tmp_path / "a"), builder(tmp_path / "b")
        for name in ("model.safetensors", "tokenizer_config.json"):
            assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_language_tables_name_real_tokens():
    """Every code in the family tables exists in the real tokenizer's list of languages."""
    from transformers.models.m2m_100.tokenization_m2m_100 import FAIRSEQ_LANGUAGE_CODES as M2M
    from transformers.models.mbart50.tokenization_mbart50 import FAIRSEQ_LANGUAGE_CODES as MBART
    from transformers.models.nllb.tokenization_nllb import FAIRSEQ_LANGUAGE_CODES as NLLB

    assert set(NLLB_CODES.values()) <= set(NLLB)
    assert set(MBART50_CODES.values()) <= set(MBART)
    languages = {tag.split("-")[0] for tag in (*NLLB_CODES, *MBART50_CODES)}
    assert languages <= set(M2M["m2m100"]) | {"no"}
    assert all(len(code) == 3 for code in ISO639_3.values())


# --------------------------------------------------------------------------------------------------
# the engine: detection, forced target token, source token, fallbacks, order
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("family", [*TOKEN_FAMILIES, "marian"])
def test_language_tokens_are_detected_with_the_right_family(multilingual_models, family):
    engine = engine_for(family, multilingual_models)
    assert engine.language_tokens is not None
    assert engine.language_tokens.family == family
    # the language token of these families is a special token the tokenizer counts itself
    overhead = 2 if family == "marian" else 0
    assert engine.language_tokens.input_overhead == overhead
    assert engine.max_input_tokens == 48 - overhead


def test_single_pair_marian_has_no_language_tokens(tiny_models):
    config = make_config([model_dict("plain-marian", tiny_models["marian"])])
    engine = load_engine(config.models[0], config.server)
    assert engine.language_tokens is None
    assert engine.max_input_tokens == 48


@pytest.mark.parametrize("family", TOKEN_FAMILIES)
def test_forced_bos_token_is_the_target_language(multilingual_models, family):
    engine = engine_for(family, multilingual_models)
    tokens = FAMILIES[family]["tokens"]
    forced = {}
    for target in ("en", "pt"):
        kwargs = engine.language_tokens.generate_kwargs(target)
        forced[target] = kwargs["forced_bos_token_id"]
        assert engine.tokenizer.convert_ids_to_tokens(forced[target]) == tokens[target]
    assert forced["en"] != forced["pt"]


@pytest.mark.parametrize("family", TOKEN_FAMILIES)
@pytest.mark.parametrize(("source", "target"), [("pt", "en"), ("en", "pt")])
def test_generate_sets_source_token_and_forces_target_token(
    multilingual_models, spy, family, source, target
):
    engine = engine_for(family, multilingual_models)
    tokens = FAMILIES[family]["tokens"]
    texts = PT_TEXTS if source == "pt" else EN_TEXTS
    recorder = spy(engine)

    results = engine.generate(texts, GenerationParams(source, target))

    inputs, outputs, kwargs = recorder.last
    source_id, target_id = token_id(engine, tokens[source]), token_id(engine, tokens[target])
    eos = engine.tokenizer.eos_token_id
    for row in inputs:  # all three families: <source> text </s>
        assert row[0] == source_id
        assert row[-1] == eos
        assert not (set(row[1:]) & all_language_ids(engine))
    assert kwargs["forced_bos_token_id"] == target_id
    for row in outputs:  # <decoder start> <target> ...
        assert row[0] == engine.generation_config.decoder_start_token_id
        assert row[1] == target_id
        assert not (set(row[2:]) & all_language_ids(engine))
    # the tokenizer really was switched to the source language
    assert engine.count_tokens(texts) == [len(row) for row in inputs]
    assert [r.input_tokens for r in results] == [len(row) for row in inputs]
    for result in results:
        assert result.text
        assert tokens[target] not in result.text and tokens[source] not in result.text
        assert result.output_tokens >= 2


@pytest.mark.parametrize("family", TOKEN_FAMILIES)
def test_without_forcing_no_language_token_is_generated(multilingual_models, family):
    """Control: the first generated token is a language token only because the engine forces it."""
    engine = engine_for(family, multilingual_models)
    encoded = engine.tokenizer(PT_TEXTS, return_tensors="pt", padding=True)
    output = engine.model.generate(**encoded, generation_config=engine.generation_config)
    assert not (set(output[:, 1].tolist()) & all_language_ids(engine))


@pytest.mark.parametrize("family", TOKEN_FAMILIES)
def test_target_changes_the_output(multilingual_models, family):
    engine = engine_for(family, multilingual_models)
    to_en = engine.generate(PT_TEXTS, GenerationParams("pt", "en"))
    to_pt = engine.generate(PT_TEXTS, GenerationParams("pt", "pt"))
    assert [r.text for r in to_en] != [r.text for r in to_pt]
    # and the same request twice gives the same output (the source switch leaves no state behind)
    engine.generate(EN_TEXTS, GenerationParams("en", "pt"))
    assert engine.generate(PT_TEXTS, GenerationParams("pt", "en")) == to_en


@pytest.mark.parametrize("family", TOKEN_FAMILIES)
@pytest.mark.parametrize("regional", ["pt-BR", "pt-PT"])
def test_regional_tags_fall_back_to_the_language(multilingual_models, spy, family, regional):
    engine = engine_for(family, multilingual_models)
    pt_id = token_id(engine, FAMILIES[family]["tokens"]["pt"])
    assert engine.language_tokens.generate_kwargs(regional)["forced_bos_token_id"] == pt_id
    recorder = spy(engine)

    engine.generate(EN_TEXTS, GenerationParams("en", regional))
    _, outputs, _ = recorder.last
    assert [row[1] for row in outputs] == [pt_id] * len(EN_TEXTS)

    engine.generate(PT_TEXTS, GenerationParams(regional, "en"))
    inputs, _, _ = recorder.last
    assert [row[0] for row in inputs] == [pt_id] * len(PT_TEXTS)


@pytest.mark.parametrize(
    ("family", "override"),
    [("nllb", "glg_Latn"), ("mbart", "es_XX"), ("m2m100", "gl")],
)
def test_language_codes_override_the_family_table(multilingual_models, spy, family, override):
    """`language_codes` wins over the built-in table (here: send pt-BR as another language)."""
    engine = engine_for(family, multilingual_models, language_codes={"pt-BR": override})
    expected = f"__{override}__" if family == "m2m100" else override
    forced = engine.language_tokens.generate_kwargs("pt-BR")["forced_bos_token_id"]
    assert engine.tokenizer.convert_ids_to_tokens(forced) == expected
    recorder = spy(engine)
    engine.generate(PT_TEXTS[:1], GenerationParams("pt-BR", "en"))
    inputs, _, _ = recorder.last
    assert engine.tokenizer.convert_ids_to_tokens(inputs[0][0]) == expected
    # plain pt is untouched by the override
    pt = FAMILIES[family]["tokens"]["pt"]
    forced = engine.language_tokens.generate_kwargs("pt")["forced_bos_token_id"]
    assert engine.tokenizer.convert_ids_to_tokens(forced) == pt


@pytest.mark.parametrize("family", TOKEN_FAMILIES)
def test_generate_returns_one_result_per_input_in_order(multilingual_models, family):
    engine = engine_for(family, multilingual_models)
    texts = [PT_TEXTS[0], PT_TEXTS[1], PT_TEXTS[2], PT_TEXTS[0]]
    batch = engine.generate(texts, GenerationParams("pt", "en"))
    assert len(batch) == len(texts)
    one_by_one = [engine.generate([t], GenerationParams("pt", "en"))[0] for t in texts]
    assert [r.input_tokens for r in batch] == engine.count_tokens(texts)
    assert [r.text for r in batch] == [r.text for r in one_by_one]
    assert batch[0] == batch[3]


# --------------------------------------------------------------------------------------------------
# multi-target Marian: >>xx<< text prefix
# --------------------------------------------------------------------------------------------------

MARIAN_CODES = {"pt": ">>por<<", "pt-BR": ">>pob<<"}


def test_marian_target_token_prefix_and_fallback(multilingual_models, spy):
    engine = engine_for("marian", multilingual_models)
    tokens = engine.language_tokens
    assert tokens.text_prefix("pt") == ">>por<< "
    assert tokens.text_prefix("pt-BR") == ">>por<< "  # no >>pt_br<< / >>pob<< without an override
    assert tokens.text_prefix("en") == ""  # not a target of this model
    assert tokens.generate_kwargs("pt") == {}

    recorder = spy(engine)
    engine.generate(EN_TEXTS, GenerationParams("en", "pt"))
    inputs, outputs, kwargs = recorder.last
    por = token_id(engine, ">>por<<")
    assert [row[0] for row in inputs] == [por] * len(EN_TEXTS)
    assert "forced_bos_token_id" not in kwargs
    assert all(row[0] == engine.generation_config.decoder_start_token_id for row in outputs)


@pytest.mark.parametrize("key", ["pt-BR", "pt_BR", "pt-br"])
def test_marian_language_codes_override(multilingual_models, spy, key):
    """{"pt-BR": ">>pob<<"} sends Brazilian Portuguese as >>pob<<, however the key is spelled."""
    engine = engine_for(
        "marian", multilingual_models, language_codes={key: ">>pob<<", "pt": ">>por<<"}
    )
    tokens = engine.language_tokens
    assert tokens.text_prefix("pt-BR") == ">>pob<< "
    assert tokens.text_prefix("pt") == ">>por<< "

    recorder = spy(engine)
    results = engine.generate(EN_TEXTS, GenerationParams("en", "pt-BR"))
    inputs, _, _ = recorder.last
    assert [row[0] for row in inputs] == [token_id(engine, ">>pob<<")] * len(EN_TEXTS)
    assert len(results) == len(EN_TEXTS)


def test_marian_max_input_tokens_accounts_for_the_prefix(multilingual_models, spy):
    engine = engine_for("marian", multilingual_models, language_codes=MARIAN_CODES)
    tokenizer = engine.tokenizer
    window = 48
    assert engine.max_input_tokens == window - engine.language_tokens.input_overhead

    # The prefix never costs more tokens than reserved, whatever the text.
    from model_factory import NEWS_CORPUS

    samples = [s[:60] for s in NEWS_CORPUS] + ["x", " leading space", "«quote»", "2,1%"]
    plain = engine.count_tokens(samples)
    for prefix in (">>por<< ", ">>pob<< "):
        prefixed = [len(ids) for ids in tokenizer([prefix + s for s in samples]).input_ids]
        extra = [p - n for p, n in zip(prefixed, plain, strict=True)]
        assert min(extra) >= 1
        assert max(extra) <= engine.language_tokens.input_overhead, extra

    # A text of exactly max_input_tokens tokens (as the server counts them) still fits once
    # prefixed; without the reservation, one of window tokens would not.
    words = " ".join(NEWS_CORPUS).split()
    text = ""
    for word in words:
        candidate = f"{text} {word}".strip()
        if engine.count_tokens([candidate])[0] > engine.max_input_tokens:
            break
        text = candidate
    while engine.count_tokens([text])[0] < engine.max_input_tokens:
        text += "a"
    assert engine.count_tokens([text]) == [engine.max_input_tokens]
    recorder = spy(engine)
    result = engine.generate([text], GenerationParams("en", "pt-BR"))
    inputs, _, _ = recorder.last
    assert len(inputs[0]) <= window
    assert inputs[0][0] == token_id(engine, ">>pob<<")
    assert result[0].input_tokens == len(inputs[0])


def test_language_tokens_detect_needs_no_engine(multilingual_models):
    """LanguageTokens works on the bare tokenizer too (the CTranslate2 engine shares it)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(multilingual_models["nllb"])
    tokens = LanguageTokens.detect(tokenizer, {})
    tokens.set_source("pt-BR")
    assert tokenizer("Olá").input_ids[0] == tokenizer.convert_tokens_to_ids("por_Latn")
    tokens.set_source("en")
    assert tokenizer("Hello").input_ids[0] == tokenizer.convert_tokens_to_ids("eng_Latn")


# --------------------------------------------------------------------------------------------------
# end to end: real server, real client
# --------------------------------------------------------------------------------------------------

E2E = {
    **{family: model_dict(family, Path()) for family in TOKEN_FAMILIES},
    "marian": {
        **model_dict("marian", Path()),
        "languages": ["en-pt", "en:pt-BR"],
        "language_codes": MARIAN_CODES,
    },
}


@pytest.mark.parametrize("family", [*TOKEN_FAMILIES, "marian"])
def test_translate_through_server_and_client(multilingual_models, family):
    """translate() through BackgroundServer + dragoman.Client: one result per text, the model and
    route named, and the language tokens that reached the model are the requested ones."""
    import dragoman

    model = {**E2E[family], "source": str(multilingual_models[family])}
    name = model["name"]
    if family == "marian":  # (source, to, the route's target, token that must reach the model)
        directions = [("en", "pt", "pt", ">>por<<"), ("en", "pt_BR", "pt-BR", ">>pob<<")]
    else:
        tokens = FAMILIES[family]["tokens"]
        directions = [
            ("pt", "en", "en", tokens["en"]),
            ("en", "pt", "pt", tokens["pt"]),
            ("en", "pt_BR", "pt-BR", tokens["pt"]),
        ]
    with BackgroundServer(make_config([model])) as running:
        assert running.ready
        engine = running.server.registry.get(name).engine
        recorder = GenerateSpy(engine.model)
        engine.model.generate = recorder  # this engine dies with the server
        with dragoman.Client(running.address) as client:
            for source, to, target, token in directions:
                text = PT_TEXTS[0] if source == "pt" else EN_TEXTS[0]
                results = client.translate(text, to=to, source=source)

                assert len(results) == 1
                result = results[0]
                assert result.models == [name]
                assert [(h.model, h.source_language, h.target_language) for h in result.route] == [
                    (name, source, target)
                ]
                assert result.source_language == source and not result.pivoted
                assert result.text and token not in result.text
                inputs, outputs, _ = recorder.last
                assert len(inputs) == 1
                if family == "marian":  # >>xx<< leads the input; nothing is forced
                    assert inputs[0][0] == token_id(engine, token)
                else:  # <source> text </s> in, <start> <target> ... out
                    assert inputs[0][0] == token_id(engine, FAMILIES[family]["tokens"][source])
                    assert outputs[0][1] == token_id(engine, token)


# --------------------------------------------------------------------------------------------------
# dragoman models pull
# --------------------------------------------------------------------------------------------------


def _pull(tmp_path: Path, models_toml: str) -> subprocess.CompletedProcess:
    config = tmp_path / "dragoman.toml"
    config.write_text(textwrap.dedent(models_toml))
    dead = "http://127.0.0.1:9"  # any request that got past offline mode would fail fast here
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf-home"),
        "HTTP_PROXY": dead,
        "HTTPS_PROXY": dead,
        "ALL_PROXY": dead,
        "NO_PROXY": "",
    }
    env.pop("TRANSFORMERS_OFFLINE", None)
    env.pop("HF_HUB_CACHE", None)
    env.pop("HUGGINGFACE_HUB_CACHE", None)
    return subprocess.run(
        [sys.executable, "-m", "dragoman", "models", "pull", "--config", str(config)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_pull_local_directory_has_nothing_to_pull(tmp_path, multilingual_models):
    done = _pull(
        tmp_path,
        f"""
        [[models]]
        name = "tiny-local"
        task = "translation"
        source = "{multilingual_models["nllb"]}"
        languages = ["pt-en"]
        """,
    )
    assert done.returncode == 0, done.stderr
    assert "tiny-local" in done.stderr and "nothing to pull" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def test_pull_of_an_unreachable_hub_model_fails_in_one_line(tmp_path):
    """`models pull` downloads even where HF_HUB_OFFLINE=1 is set (that is for serving); with
    no Hub reachable (as here) it fails in one line per model, quickly, with nothing written."""
    started = time.monotonic()
    done = _pull(
        tmp_path,
        """
        [[models]]
        name = "hub-model"
        task = "translation"
        source = "Helsinki-NLP/opus-mt-tc-big-en-pt"
        languages = ["en-pt"]
        """,
    )
    assert done.returncode == 1, done.stderr
    output = done.stderr + done.stdout
    assert "Traceback" not in output
    failures = [line for line in output.splitlines() if "cannot pull" in line]
    assert len(failures) == 1, output
    assert failures[0].startswith("hub-model:")
    assert "Helsinki-NLP/opus-mt-tc-big-en-pt" in failures[0]
    # It tried the Hub (downloads on for pull), rather than refusing as "offline".
    assert "offline" not in failures[0].lower()
    assert time.monotonic() - started < 30  # no retries with backoff
    assert not list((tmp_path / "hf-home").rglob("*.safetensors"))


@pytest.mark.parametrize(
    ("family", "languages", "missing"),
    [
        ("mbart", ["pt-en", "gl-en"], "gl"),  # mBART-50 has no Galician
        ("nllb", ["pt-en", "en-xh"], "xh"),  # not in the built-in table, no override
    ],
)
def test_language_without_a_code_fails_the_load_naming_it(
    multilingual_models, family, languages, missing
):
    """A configured language the model has no token for is a load error naming it, not a
    silently wrong (or stale) language token at request time."""
    from dragoman_server.errors import ModelLoadError

    entry = {**model_dict(family, multilingual_models[family]), "languages": languages}
    config = make_config([entry])
    with pytest.raises(ModelLoadError) as error:
        load_engine(config.models[0], config.server)
    assert f"no language code for {missing}" in str(error.value)
    assert "language_codes" in str(error.value)
    with_override = {**entry, "language_codes": {missing: FAMILIES[family]["tokens"]["pt"]}}
    config = make_config([with_override])
    load_engine(config.models[0], config.server).close()  # an override makes it loadable


@pytest.mark.parametrize(
    ("tag", "token"),
    [("zh", "zho_Hans"), ("zh-CN", "zho_Hans"), ("zh-Hant", "zho_Hant"), ("zh-TW", "zho_Hant")],
)
def test_nllb_script_and_region_pick_the_chinese_script(multilingual_models, tag, token):
    """NLLB tells Simplified from Traditional Chinese; the tag's script or region decides."""
    engine = engine_for("nllb", multilingual_models)
    forced = engine.language_tokens.generate_kwargs(tag)["forced_bos_token_id"]
    assert engine.tokenizer.convert_ids_to_tokens(forced) == token


def test_marian_target_without_a_token_loads_and_gets_no_prefix(multilingual_models):
    """Multi-source Marian checkpoints can carry stray >>xx<< tokens: a configured target with
    no token of its own is not an error; its inputs simply get no target tag."""
    entry = {**model_dict("marian", multilingual_models["marian"]), "languages": ["en-de"]}
    config = make_config([entry])
    engine = load_engine(config.models[0], config.server)
    try:
        assert engine.language_tokens.family == "marian"
        assert engine.language_tokens.text_prefix("de") == ""
        assert engine.language_tokens.text_prefix("pt") == ">>por<< "
    finally:
        engine.close()
