"""Language detection restricted to what a server serves: measured on short headlines, per call
and per server (never a global restriction), and end to end through the real server and client."""

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest

import dragoman
from conftest import copy_model, make_config, needs_copy_model
from dragoman_server import detection
from dragoman_server.server import BackgroundServer

HEADLINES = Path(__file__).parent / "data" / "headlines.tsv"


def headlines() -> list[tuple[str, str]]:
    rows = []
    for line in HEADLINES.read_text("utf-8").splitlines():
        if line and not line.startswith("#"):
            language, text = line.split("\t")
            rows.append((language, text))
    return rows


def by_language(language: str) -> list[str]:
    return [t for lang, t in headlines() if lang == language]


# Short Portuguese headlines that detection over all ~140 languages took for Galician (the old
# server refused them: "no route"), or ranked Portuguese at under 0.1.
SEVEN = [
    "Atraso nas obras do aeroporto",
    "Neve corta estradas na Serra da Estrela",
    "Tribunal absolve antigo autarca",
    "Sismo sentido no Algarve",
    "Seca agrava-se no Alentejo",
    "Pensões sobem em janeiro",
    "Benfica vence Porto no clássico",
]


def outcome(text: str, candidates: set[str]) -> str:
    """The language detection settles on, or 'refused'."""
    found = detection.identify(text, candidates)
    return found.best.language if found.reliable else "refused"


def test_the_labelled_set_is_big_enough():
    counts = Counter(lang for lang, _ in headlines())
    assert counts["pt"] >= 30 and counts["en"] >= 30
    assert counts["es"] >= 10 and counts["fr"] >= 10 and counts["de"] + counts["it"] >= 20
    assert all(len(t.split()) <= 8 for _, t in headlines())


def test_pt_en_headlines_are_all_detected():
    """Measured (see detection.py): restricted to {pt, en}, 72/72 right and none refused."""
    candidates = {"pt", "en"}
    results = [(lang, outcome(t, candidates)) for lang, t in headlines() if lang in candidates]
    assert len(results) >= 60
    assert all(lang == got for lang, got in results), [r for r in results if r[0] != r[1]]


def test_four_language_headlines_accuracy():
    """Measured: restricted to {pt, en, es, fr}, 91/96 right, 2 wrong, 3 refused."""
    candidates = {"pt", "en", "es", "fr"}
    results = Counter(
        "right" if got == lang else ("refused" if got == "refused" else "wrong")
        for lang, t in headlines()
        if lang in candidates
        for got in [outcome(t, candidates)]
    )
    total = sum(results.values())
    assert results["right"] >= 0.93 * total, results
    assert results["wrong"] <= 0.03 * total, results


def test_unserved_languages_are_refused_as_themselves():
    """de/it headlines to a pt-en server: most refused as foreign, none refused as unreliable
    pt/en and, where found, named as what they are."""
    refused = 0
    for language in ("de", "it"):
        for text in by_language(language):
            found = detection.identify(text, {"pt", "en"})
            if found.foreign is not None:
                refused += 1
                assert found.foreign.language == language
                assert found.foreign.confidence >= detection.FOREIGN
    assert refused >= 14  # measured 15/20
    paragraph = ". ".join(by_language("de")[:3]) + "."
    found = detection.identify(paragraph, {"pt", "en"})
    assert found.foreign is not None and found.foreign.language == "de"
    assert not found.reliable


def test_served_headlines_never_look_foreign():
    """FOREIGN is above every non-candidate score seen on a served headline (max 0.55)."""
    for candidates in ({"pt", "en"}, {"pt", "en", "es", "fr"}):
        for lang, text in headlines():
            if lang in candidates:
                assert detection.identify(text, candidates).foreign is None, text


def test_candidates_by_primary_subtag_and_unknown_ones_ignored():
    found = detection.identify(SEVEN[0], {"pt-BR", "en-GB", "xx-Unknown"})
    assert found.reliable and found.best.language == "pt"
    # Nothing py3langid knows: the ranking over every language.
    assert detection.detect("Bom dia a todos.", 1, {"qq"})[0].language in {"pt", "gl", "es"}


def test_detect_ranks_only_candidates_and_sums_to_one():
    scores = detection.detect(SEVEN[1], 10, {"pt", "en", "es"})
    assert [s.language for s in scores][0] == "pt"
    assert {s.language for s in scores} <= {"pt", "en", "es"}
    assert abs(sum(s.confidence for s in scores) - 1) < 1e-3
    assert detection.detect(SEVEN[1], 10)[0].language != "pt"  # unrestricted: Galician wins


def test_restriction_is_per_call_and_leaves_the_shared_identifier_alone():
    labels = list(detection._identifier().labels)
    spanish = by_language("es")
    portuguese = by_language("pt")

    def one(i: int) -> tuple[str, str]:
        if i % 2:
            text = spanish[i % len(spanish)]
            return "es", detection.identify(text, {"es", "en"}).best.language
        text = portuguese[i % len(portuguese)]
        return "pt", detection.identify(text, {"pt", "en"}).best.language

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(400)))
    assert all(want == got for want, got in results)
    assert list(detection._identifier().labels) == labels


def test_configured_languages():
    config = make_config(
        [
            copy_model("a", "pt-en"),
            copy_model("b", "en-de"),
            {"name": "s", "task": "summarization", "source": "x", "languages": ["fr"]},
        ]
    )
    assert detection.configured_languages(config.models) == {"pt", "en", "de", "fr"}


# -- through the real server and client ---------------------------------------------------------


@pytest.fixture(scope="module")
def pt_en():
    config = make_config([copy_model("copy-pt-en", "pt-en")])
    with BackgroundServer(config) as server:
        assert server.ready
        with dragoman.Client(server.address, retries=0, timeout=60) as client:
            yield client


@needs_copy_model
def test_short_pt_headlines_are_detected_and_translated(pt_en):
    results = pt_en.translate(SEVEN, to="en")
    assert [r.text for r in results] == SEVEN
    assert all(r.source_language == "pt" and r.source_language_detected for r in results)
    assert all(detection.CONFIDENT <= r.detection_confidence <= 1 for r in results)
    chunks = list(pt_en.translate_stream(SEVEN, to="en"))
    assert ["".join(c.text for c in chunks if c.text_index == i) for i in range(7)] == SEVEN


@needs_copy_model
def test_detect_rpc_answers_among_the_configured_languages(pt_en):
    for text in SEVEN:
        scores = pt_en.detect(text, max_results=5)
        assert scores[0].language == "pt", (text, scores)
        assert {s.language for s in scores} <= {"pt", "en"}


@needs_copy_model
def test_a_foreign_paragraph_is_refused_naming_its_language(pt_en):
    paragraph = ". ".join(by_language("de")[:3]) + "."
    with pytest.raises(dragoman.DragomanError) as excinfo:
        pt_en.translate(paragraph, to="en")
    assert excinfo.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "texts[0]" in excinfo.value.message and "'de'" in excinfo.value.message
    assert "no route" in excinfo.value.message


@needs_copy_model
def test_an_english_text_to_portuguese_is_no_route_not_a_copy(pt_en):
    """en is a configured language (a target), so an English text for target pt is found to be
    English, which has no route to pt: not taken for Portuguese and returned unchanged."""
    with pytest.raises(dragoman.DragomanError) as excinfo:
        pt_en.translate("Government approves 2027 budget", to="pt")
    assert "'en'" in excinfo.value.message and "no route" in excinfo.value.message


@needs_copy_model
def test_two_servers_in_one_process_keep_their_own_candidates(pt_en):
    """One server serves es-en, the other pt-en; interleaved calls each see their own languages."""
    config = make_config([copy_model("copy-es-en", "es-en")])
    spanish = by_language("es")
    with BackgroundServer(config) as server, dragoman.Client(server.address, retries=0) as es_en:

        def call(i: int) -> tuple[str, str]:
            if i % 2:
                return "es", es_en.detect(spanish[i % len(spanish)])[0].language
            return "pt", pt_en.detect(SEVEN[i % len(SEVEN)])[0].language

        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(call, range(60)))
        assert all(want == got for want, got in results), results
        [result] = es_en.translate(spanish[0], to="en")
        assert result.source_language == "es" and result.text == spanish[0]


def test_a_text_with_nothing_to_read_is_not_a_detection():
    """No features (emoji, an ellipsis): every candidate ties at 1/n, which is not a detection."""
    for text in ("😀👍", "…", "<x1>"):
        found = detection.identify(text, {"pt", "en"})
        assert not found.reliable and found.best.confidence == 0.5


@needs_copy_model
def test_an_unreadable_text_is_refused_with_set_source_language(pt_en):
    with pytest.raises(dragoman.DragomanError) as excinfo:
        pt_en.translate("😀👍", to="en")
    assert excinfo.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "texts[0]" in excinfo.value.message and "source_language" in excinfo.value.message
    [result] = pt_en.translate("😀👍", to="en", source="pt")
    assert result.text == "😀👍"


@needs_copy_model
def test_a_server_for_a_regional_tag_takes_text_given_or_detected_as_the_language():
    """Detection names languages, not regions: a server configured for pt-BR:en only used to
    refuse every detected Portuguese text ("detected language 'pt' has no route"), and "pt"."""
    model = {**copy_model("copy-pt-br", "pt-en"), "languages": ["pt-BR:en", "en:pt-BR"]}
    text = "O governo anunciou hoje novas medidas para a economia."
    with BackgroundServer(make_config([model])) as running:
        with dragoman.Client(running.address, retries=0) as client:
            given = [client.translate(text, to="en", source=s)[0] for s in ("pt-BR", "pt", "pt-PT")]
            [detected] = client.translate(text, to="en")
            english = "The government announced measures."
            [regional] = client.translate(english, to="pt-BR", source="en")
            with pytest.raises(dragoman.DragomanError) as wrong_target:
                client.translate(english, to="pt", source="en")
    assert [t.text for t in given] == [text] * 3 and regional.text == english
    assert detected.text == text and detected.source_language == "pt"
    # The variant of an output is the caller's to choose: "pt" is not quietly made "pt-BR".
    assert wrong_target.value.code == grpc.StatusCode.INVALID_ARGUMENT
