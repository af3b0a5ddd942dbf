"""Runtime output checks (issue 9): they never alter a faithful output; they flag, regenerate with
stricter decoding, and report the flags to the caller (Translation.flags, stream chunks)."""

import asyncio

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dragoman
from conftest import copy_model, make_config, needs_copy_model
from dragoman_server import output_checks
from dragoman_server.cache import TranslationCache
from dragoman_server.engines import Generated, GenerationParams
from dragoman_server.errors import ResourceExhausted
from dragoman_server.output_checks import check, cut_repetition, retry_params
from dragoman_server.server import BackgroundServer
from dragoman_server.settings import ModelConfig

# Whitespace a newsroom's copy carries between repeated words and digit groups.
SPACES = [" ", "\u00a0", "\u202f", "\u2009", "\t", "  ", "\u3000"]
# Numbers with every separator convention.
NUMBERS = [
    "1\u00a0000\u00a0000\u00a0000",
    "1\u202f000,5",
    "1.000,5",
    "1,000.5",
    "2 500 000",
    "3,5%",
    "12,3 %",
    "€1.200",
    "US$ 4,5 mil milhões",
    "05/03/2024",
    "2024-03-05",
    "1.º",
    "10h30",
    "+351 21 000 00 00",
]
REPEATED = ["muito", "sim", "não", "000", "ha", "é"]


def _repeated_words(word: str, space: str, times: int) -> str:
    return space.join([word] * times)


# -- the checks themselves --------------------------------------------------------------------


def test_faithful_output_is_never_flagged():
    for source in [
        "1\u00a0000\u00a0000\u00a0000 euros",
        "Sim, sim, sim, sim!",
        "A A A A",
        "muito\tmuito\tmuito  muito bom",
        "ok",
        "",
    ]:
        assert check(source, source) == []


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(NUMBERS),
            st.builds(
                _repeated_words,
                st.sampled_from(REPEATED),
                st.sampled_from(SPACES),
                st.integers(1, 8),
            ),
            st.sampled_from(["O Governo", "disse", "«Não», garantiu.", "GLS1", "<x1>", "\n"]),
        ),
        min_size=1,
        max_size=12,
    ),
    st.lists(st.sampled_from(SPACES), min_size=1, max_size=12),
)
def test_identical_output_passes_every_check(parts, spaces):
    text = "".join(p + spaces[i % len(spaces)] for i, p in enumerate(parts))
    assert check(text, text) == []
    assert cut_repetition(text, text) == text


def test_numbers_are_compared_across_separator_conventions():
    for source, output in [
        ("1.000,5 euros", "1,000.5 euros"),
        ("1\u00a0000\u00a0000 de pessoas", "1,000,000 people"),
        ("1\u00a0000\u00a0000 de pessoas", "1000000 people"),
        ("em 2023 300 pessoas", "in 2023, 300 people"),
        ("a 5 de março de 2024", "on March 5, 2024"),
        ("05/03/2024", "03/05/2024"),
        ("subiu 3,5%", "rose 3.5 per cent"),
        ("custou €1.200", "cost €1,200"),
    ]:
        assert check(source, output) == [], (source, output)
    for source, output in [
        ("1\u00a0000\u00a0000\u00a0000 euros", "1 000 euros"),
        ("em 2023", "in 2024"),
        ("subiu 3,5%", "rose 35%"),
        ("custou 12 euros", "cost euros"),
    ]:
        [finding] = check(source, output)
        assert finding.kind == output_checks.NUMBERS_MISMATCH, (source, output)


def test_invented_repetition_is_flagged_and_only_it_is_cut():
    source = "O ministro disse que o país vai crescer."
    output = "The minister said that the country the country the country the country will grow."
    [finding] = check(source, output)
    assert finding.kind == output_checks.REPETITION
    assert cut_repetition(source, output) == "The minister said that the country will grow."
    # Whitespace of the rest is kept exactly; the run is cut to the source's longest run ("sim,"
    # twice in a row).
    output = "Yes,\u00a0yes,\u00a0yes!  Go go go go go go go."
    expected = "Yes,\u00a0yes,\u00a0yes!  Go go."
    assert cut_repetition("Sim,\u00a0sim,\u00a0sim! Vai.", output) == expected


def test_digit_groups_are_not_a_repetition():
    """Grouping a figure repeats its groups ("1,000,000,000"): that is no loop, and cutting it
    would change the number."""
    for output in ["cost 1,000,000,000 euros", "cost 1\u00a0000\u00a0000\u00a0000 euros"]:
        assert check("custou 1000000000 euros", output) == []
    for output in ["cost 1,000,000,000 euros", "IP 1.1.1.1.1.1, 10 10 10 10"]:
        assert cut_repetition("custou 1000000000 euros", output) == output


def test_runaway_and_empty_outputs_are_flagged_not_cut():
    [finding] = check("Bom dia.", "Good morning, " + " ".join(f"w{i}x" for i in range(40)))
    assert finding.kind == output_checks.LENGTH_RATIO
    [finding] = check("Bom dia.", "")
    assert finding.kind == output_checks.LENGTH_RATIO
    assert check("...", "") == []


def test_retry_params_are_stricter_and_a_different_batch_group():
    params = GenerationParams("pt", "en")
    numbers = retry_params(params, check("em 2023", "in 2024"))
    assert numbers.num_beams and numbers.num_beams > 1 and numbers != params
    loop = retry_params(params, check("Olá.", "hi hi hi hi hi"))
    assert loop.no_repeat_ngram_size and loop.repetition_penalty and loop.repetition_penalty > 1
    assert (loop.source_language, loop.target_language) == ("pt", "en")


# -- the engines honour the regeneration knobs --------------------------------------------------


@pytest.fixture(scope="module")
def ct2_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("DRAGOMAN_CT2_CACHE", str(tmp_path_factory.mktemp("ct2")))
    yield
    mp.undo()


@needs_copy_model
@pytest.mark.parametrize("backend", ["torch", "ctranslate2"])
def test_engines_honour_the_regeneration_knobs(backend, ct2_cache):
    from dragoman_server.engines import load_engine

    config = make_config([{**copy_model("copy", "pt-en"), "backend": backend}])
    engine = load_engine(config.models[0], config.server)
    try:
        text = "sim sim sim sim sim, disse ele."
        plain = GenerationParams("pt", "en")
        [copied] = engine.generate([text], plain)
        assert copied.text == text
        # The copy model can only copy: forbidding any repeated 2-gram must change its output.
        [strict] = engine.generate([text], GenerationParams("pt", "en", no_repeat_ngram_size=2))
        assert strict.text != text
        [beam] = engine.generate([text], GenerationParams("pt", "en", num_beams=4))
        assert beam.text == text
        [penalised] = engine.generate([text], GenerationParams("pt", "en", repetition_penalty=50.0))
        assert penalised.text != text
    finally:
        engine.close()


# -- through the real server and client ---------------------------------------------------------


@pytest.fixture(scope="module")
def client(server):
    with dragoman.Client(server.address, timeout=120) as c:
        yield c


@pytest.fixture(autouse=True)
def cold_cache(server):
    server.server.dataplane.cache.clear()


@needs_copy_model
def test_figures_with_no_break_spaces_come_back_unchanged(client):
    """Before: "1 000 000 000 euros" (no-break spaces) came back as "1 000 euros"."""
    text = "O défice foi de 1\u00a0000\u00a0000\u00a0000 euros."
    [t] = client.translate(text, to="en", source="pt")
    assert t.text == text and t.flags == []


@needs_copy_model
def test_numbers_and_repeats_with_every_whitespace_come_back_unflagged(client, server):
    flagged = sum(server.server.dataplane.flagged.values())
    texts = [f"O valor é {n} segundo o INE." for n in NUMBERS] + [
        f"Disse {_repeated_words(w, s, k)} ao jornal."
        for w in REPEATED[:3]
        for s in SPACES
        for k in (3, 5)
    ]
    results = client.translate(texts, to="en", source="pt")
    assert [t.text for t in results] == texts
    assert all(t.flags == [] for t in results)
    chunks = list(client.translate_stream("\n\n".join(texts[:8]), to="en", source="pt"))
    assert "".join(c.text for c in chunks) == "\n\n".join(texts[:8])
    assert all(c.flags == [] for c in chunks)
    assert sum(server.server.dataplane.flagged.values()) == flagged


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    number=st.sampled_from(NUMBERS),
    word=st.sampled_from(REPEATED),
    space=st.sampled_from(SPACES),
    times=st.integers(3, 6),
)
@needs_copy_model
def test_copy_model_round_trip_property(client, number, word, space, times):
    text = f"Foram {number} e {_repeated_words(word, space, times)}, disse."
    [t] = client.translate(text, to="en", source="pt")
    assert t.text == text and t.flags == []


def test_random_model_output_is_flagged_end_to_end(client, server):
    """The tiny random Marian loses the source's numbers: the segment is regenerated with beam
    search and, still wrong, flagged numbers_mismatch in the response, the stream and the
    metrics; a flagged output is not cached."""
    text = "The rate rose to 2,1% in 2023."
    before = server.server.dataplane.flagged[output_checks.NUMBERS_MISMATCH]
    [t] = client.translate(text, to="pt", source="en", model="tiny-marian")
    kinds = {f.kind for f in t.flags}
    assert output_checks.NUMBERS_MISMATCH in kinds
    assert all(isinstance(f, dragoman.OutputFlag) for f in t.flags)
    numbers = next(f for f in t.flags if f.kind == output_checks.NUMBERS_MISMATCH)
    assert numbers.regenerated and numbers.segment_index == 0 and "2023" in numbers.detail
    assert server.server.dataplane.flagged[output_checks.NUMBERS_MISMATCH] > before
    assert len(server.server.dataplane.cache) == 0
    second = "Nothing to report.\n\n" + text
    chunks = list(client.translate_stream(second, to="pt", source="en", model="tiny-marian"))
    flagged = [f for c in chunks for f in c.flags if f.kind == output_checks.NUMBERS_MISMATCH]
    assert flagged and all(f.segment_index == 1 for f in flagged)
    assert not [f for f in chunks[0].flags if f.kind == output_checks.NUMBERS_MISMATCH]


def test_flagged_segment_is_regenerated_and_never_cached():
    from dragoman_server.generation import SegmentGenerator

    class Batcher:
        """Stands in for the model's batcher: answers the regeneration with a fixed output."""

        def __init__(self, answer: str):
            self.answer, self.params = answer, []

        async def generate(self, texts, tokens, params):
            self.params.append(params)
            return [Generated(self.answer, 5, 5)]

    class Entry:
        def __init__(self, batcher):
            self.batcher = batcher
            self.config = ModelConfig("m", "translation", "unused", ("pt-en",))

    plane = SegmentGenerator(TranslationCache(10))

    async def run(source: str, output: str, again: str):
        future = asyncio.get_running_loop().create_future()
        future.set_result(Generated(output, 5, 50))
        entry = Entry(Batcher(again))
        key = ("m", GenerationParams("pt", "en"), source)
        return await plane._finish(future, key, entry, 5), entry.batcher.params

    loop = "Hello all all all all everyone."
    result, params = asyncio.run(run("Olá a todos.", loop, "Hello everyone."))
    assert result.text == "Hello everyone." and [f.kind for f in result.flags] == ["repetition"]
    assert result.flags[0].regenerated and params[0].no_repeat_ngram_size
    assert len(plane.cache) == 0 and plane.flagged["repetition"] == 1
    # Still looping after the regeneration: only the invented copies are cut.
    result, _ = asyncio.run(run("Olá a todos.", loop, loop))
    assert result.text == "Hello all everyone." and "still" in result.flags[0].detail
    good, params = asyncio.run(run("Olá.", "Hello.", "unused"))
    assert good.text == "Hello." and not params and len(plane.cache) == 1
    # The regeneration refused (queue full): the first output stands, flagged, not regenerated.
    plane.cache.clear()
    future = None

    class FullBatcher:
        async def generate(self, texts, tokens, params):
            raise ResourceExhausted("queue is full")

    async def refused():
        nonlocal future
        future = asyncio.get_running_loop().create_future()
        future.set_result(Generated("em 2024", 5, 5))
        key = ("m", GenerationParams("pt", "en"), "em 2023")
        return await plane._finish(future, key, Entry(FullBatcher()), 5)

    result = asyncio.run(refused())
    assert result.text == "em 2024" and [f.kind for f in result.flags] == ["numbers_mismatch"]
    assert not result.flags[0].regenerated and len(plane.cache) == 0


@pytest.mark.parametrize("mode", ["flag", "off"])
def test_a_model_can_flag_without_regenerating_or_skip_the_checks(tiny_models, mode):
    """`output_checks = "flag"`: flags, one generation, never cached; "off": no checks, cached."""
    model = {
        "name": "tiny",
        "task": "translation",
        "source": str(tiny_models["marian"]),
        "languages": ["en-pt"],
        "output_checks": mode,
    }
    with BackgroundServer(make_config([model])) as running:
        entry = running.server.registry.get("tiny")
        before = entry.batcher.stats.segments  # the warm-up's
        with dragoman.Client(running.address, retries=0) as c:
            [t] = c.translate("The rate rose to 2,1% in 2023.", to="pt", source="en")
        generated = entry.batcher.stats.segments - before
        cached = len(running.server.dataplane.cache)
    assert generated == 1  # no second pass
    if mode == "flag":
        [flag] = [f for f in t.flags if f.kind == output_checks.NUMBERS_MISMATCH]
        assert not flag.regenerated and "not regenerated" in flag.detail and cached == 0
    else:
        assert t.flags == [] and cached == 1


def test_glossary_placeholder_lost_is_flagged(client):
    """The tiny random Marian loses the placeholder of a glossary term: the entry is not
    reported applied, the segment is flagged glossary_term_missing, and the placeholder's digit
    is not taken for a lost number."""
    [t] = client.translate(
        "The Government met.", to="pt", source="en", glossary={"Government": "Governo"}
    )
    assert t.applied_glossary == {} and "Governo" not in t.text
    missing = [f for f in t.flags if f.kind == output_checks.GLOSSARY_TERM_MISSING]
    assert len(missing) == 1 and "Government" in missing[0].detail
    assert missing[0].segment_index == 0
    assert not [f for f in t.flags if f.kind == output_checks.NUMBERS_MISMATCH]
    assert check("O GLS1 e o A320 em <x1>.", "The and the in.") == []


@needs_copy_model
def test_flags_of_a_pivot_and_of_html_stay_empty_for_faithful_output():
    config = make_config(
        [copy_model("copy-pt-en", "pt-en"), copy_model("copy-en-de", "en-de")], warmup=False
    )
    text = "Foram 1\u00a0000 pessoas, sim\u00a0sim\u00a0sim."
    html = f"<p>{text}</p><ul><li>{text}</li></ul>"
    with BackgroundServer(config) as running, dragoman.Client(running.address) as c:
        [t] = c.translate(text, to="de", source="pt")
        assert t.pivoted and t.text == text and t.flags == []
        [t] = c.translate(html, to="en", source="pt", mime_type="text/html")
        assert t.text == html and t.flags == []


@needs_copy_model
def test_placeholder_lost_in_a_later_hop_is_flagged(tiny_models):
    """pt -> de pivots through en: the copy model keeps the request's placeholder, the tiny
    random model of the second hop loses it; the term is not applied and the flag says so."""
    tiny = {
        "name": "tiny-en-de",
        "task": "translation",
        "source": str(tiny_models["marian"]),
        "languages": ["en-de"],
    }
    config = make_config([copy_model("copy-pt-en", "pt-en"), tiny], warmup=False)
    with BackgroundServer(config) as running, dragoman.Client(running.address) as c:
        [t] = c.translate(
            "O Governo reuniu.", to="de", source="pt", glossary={"Governo": "Regierung"}
        )
    assert t.pivoted and t.applied_glossary == {}
    missing = [f for f in t.flags if f.kind == output_checks.GLOSSARY_TERM_MISSING]
    assert len(missing) == 1 and "Governo" in missing[0].detail
