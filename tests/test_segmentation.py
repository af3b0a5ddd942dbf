"""Tests for dragoman_server.segmentation: exact whitespace round trips and fitting pieces."""

import importlib.util
import random
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pysbd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_ROOT = Path(__file__).resolve().parents[1]
if importlib.util.find_spec("dragoman_server") is None:
    sys.path.insert(0, str(_ROOT / "service"))

from dragoman_server import segmentation  # noqa: E402
from dragoman_server.segmentation import (  # noqa: E402
    Document,
    Paragraph,
    Piece,
    pack_segments,
    split_document,
    split_sentences,
)

MODEL_DIR = _ROOT.parent / "shared" / "models" / "copy-pt-en"
LINE_BREAKS = "\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029"
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def words(s: str) -> int:
    return len(s.split()) + 1


class Counter:
    """A count_tokens that records its calls."""

    def __init__(self, fn=words):
        self.fn = fn
        self.calls: list[str] = []

    def __call__(self, s: str) -> int:
        self.calls.append(s)
        return self.fn(s)


def is_one_cluster(s: str) -> bool:
    """Over-budget pieces are allowed only when they cannot be cut (one grapheme cluster)."""
    return len(segmentation._clusters(s, 0, len(s))) == 1


def check_document(doc: Document, text: str, count, max_tokens: int) -> None:
    segments = doc.segments()
    assert doc.render(segments) == text
    assert "".join(doc.render_paragraphs(segments)) == text
    assert len(doc.render_paragraphs(segments)) == len(doc.paragraphs)
    assert sum(doc.paragraph_segment_counts()) == len(segments)
    assert doc.leading == "" or doc.leading.isspace()
    for i, para in enumerate(doc.paragraphs):
        last = i == len(doc.paragraphs) - 1
        assert para.separator == "" or para.separator.isspace()
        if not last:
            assert any(c in LINE_BREAKS for c in para.separator)
        if para.pieces:
            assert para.pieces[0].translate and para.pieces[-1].translate
        for a, b in zip(para.pieces, para.pieces[1:], strict=False):
            assert a.translate or b.translate, "two whitespace pieces in a row"
        for piece in para.pieces:
            assert piece.text
            assert not any(c in LINE_BREAKS for c in piece.text)
            if piece.translate:
                assert not piece.text[0].isspace() and not piece.text[-1].isspace()
                fits = count(piece.text) <= max_tokens
                assert fits or is_one_cluster(piece.text), piece.text
            else:
                assert piece.text.isspace()
    if text.strip():
        assert all(para.pieces for para in doc.paragraphs)


def check_chunks(chunks: list[str], text: str, count, max_tokens: int) -> None:
    """Chunks fit, and chunks + the whitespace between them rebuild the text, in order."""
    pos = 0
    for chunk in chunks:
        assert chunk and not chunk[0].isspace() and not chunk[-1].isspace()
        assert count(chunk) <= max_tokens or is_one_cluster(chunk), chunk
        found = text.find(chunk, pos)
        assert found >= 0
        assert text[pos:found] == "" or text[pos:found].isspace()
        pos = found + len(chunk)
    assert text[pos:] == "" or text[pos:].isspace()
    if text.strip():
        assert chunks
    else:
        assert chunks == []


WORDS = [
    "O",
    "Sr.",
    "Dr.",
    "Silva",
    "disse",
    "3.5",
    "1.234,56",
    "«Olá»",
    "p.ex.",
    "etc.",
    "U.S.",
    "a,",
    "b;",
    "c:",
    "—",
    "–",
    "(nota)",
    "👩‍👩‍👧",
    "🇵🇹",
    "e\u0301",
    "שלום",
    "مرحبا",
    "\u200b",
    "\x07",
    "x" * 90,
    "word",
    "Ministro",
    "...",
    "?!",
]
INNER_SPACES = [" ", " ", " ", "  ", "\t", "\u00a0", " \u00a0", "\u2009"]
PARA_SEPARATORS = [
    "\n",
    "\n\n",
    "\r\n",
    "\r\n\r\n",
    "\r",
    "  \n",
    "\n  ",
    " \n\t\n ",
    "\u2028",
    "\u2029",
    "\n\n\n",
    "\x85",
    "\f",
]
EDGES = ["", " ", "\n", " \n ", "\t", "\r\n", "\u00a0"]


@st.composite
def articles(draw) -> str:
    paragraphs = []
    for _ in range(draw(st.integers(1, 6))):
        sentences = []
        for _ in range(draw(st.integers(1, 5))):
            ws = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=14))
            parts = [ws[0]]
            for w in ws[1:]:
                parts += [draw(st.sampled_from(INNER_SPACES)), w]
            parts.append(draw(st.sampled_from([".", "!", "?", "…", "", "»."])))
            sentences.append("".join(parts))
        joiners = [draw(st.sampled_from([" ", "  ", "\t", " \u00a0", ""])) for _ in sentences]
        paragraphs.append("".join(s + j for s, j in zip(sentences, joiners, strict=True)).strip())
    text = draw(st.sampled_from(EDGES))
    for i, p in enumerate(paragraphs):
        text += p
        if i < len(paragraphs) - 1:
            text += draw(st.sampled_from(PARA_SEPARATORS))
    return text + draw(st.sampled_from(EDGES))


# --- round trips on arbitrary input -------------------------------------------------------------


@SETTINGS
@given(st.text(), st.integers(2, 12))
def test_any_text_round_trips_with_word_counts(text, max_tokens):
    doc = split_document(text, words, max_tokens)
    check_document(doc, text, words, max_tokens)


@SETTINGS
@given(st.text(), st.integers(1, 20))
def test_any_text_round_trips_with_char_counts(text, max_tokens):
    doc = split_document(text, len, max_tokens)
    check_document(doc, text, len, max_tokens)


@SETTINGS
@given(articles(), st.integers(2, 30), st.sampled_from(["en", "pt", "pt-BR", "de", "zz"]))
def test_generated_articles_round_trip(text, max_tokens, language):
    doc = split_document(text, words, max_tokens, language)
    check_document(doc, text, words, max_tokens)
    outputs = [f"<{s.upper()}>" for s in doc.segments()]
    rendered = doc.render(outputs)
    assert "".join(doc.render_paragraphs(outputs)) == rendered
    assert rendered.count("<") >= len(outputs)


@SETTINGS
@given(articles(), st.integers(8, 60))
def test_generated_articles_with_char_counts(text, max_tokens):
    doc = split_document(text, len, max_tokens, "pt")
    check_document(doc, text, len, max_tokens)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "\n",
        " \r\n\t\u2028 ",
        "\u00a0",
        "\x00",
        "\x00\x01 \x1f",
        "😀",
        "a",
        ".",
        "...",
        "?",
        "\u200b\u200d",
        "e\u0301\u0301\u0301",
        "שלום עולם. מה שלומך?",
        "مرحبا بالعالم. كيف حالك؟",
        "我爱你。你好吗？很好！",
        "x" * 5000,
        "." * 5000,
        "a. " * 2000,
        "\n \r\n" * 500,
    ],
)
def test_edge_cases_round_trip(text):
    for count, max_tokens in ((words, 3), (len, 7), (len, 1)):
        doc = split_document(text, count, max_tokens)
        check_document(doc, text, count, max_tokens)
        check_chunks(pack_segments(text, count, max_tokens), text, count, max_tokens)


def test_whitespace_only_and_empty_text():
    empty = split_document("", words, 5)
    assert empty == Document("", ())
    assert empty.segments() == [] and empty.render([]) == ""
    assert empty.render_paragraphs([]) == []
    blank = split_document(" \n\t ", words, 5)
    assert blank.segments() == []
    assert blank.leading == " \n\t "
    assert blank.render_paragraphs([]) == [" \n\t "]
    assert blank.paragraph_segment_counts() == [0]
    assert pack_segments(" \n\t ", words, 5) == []
    assert split_sentences("  \n ") == []


# --- paragraphs ---------------------------------------------------------------------------------


def test_paragraphs_split_at_line_breaks_with_exact_separators():
    text = (
        "  Title here\r\n\r\n  First para. Second sentence!  \n"
        "\tIndented line\u2028Next line\u2029Last one.  \n\n"
    )
    doc = split_document(text, words, 100)
    assert doc.leading == "  "
    assert [p.separator for p in doc.paragraphs] == [
        "\r\n\r\n  ",
        "  \n\t",
        "\u2028",
        "\u2029",
        "  \n\n",
    ]
    assert [[x.text for x in p.pieces] for p in doc.paragraphs] == [
        ["Title here"],
        ["First para.", " ", "Second sentence!"],
        ["Indented line"],
        ["Next line"],
        ["Last one."],
    ]
    assert [[x.translate for x in p.pieces] for p in doc.paragraphs][1] == [True, False, True]
    assert doc.paragraph_segment_counts() == [1, 2, 1, 1, 1]
    assert doc.segments() == [
        "Title here",
        "First para.",
        "Second sentence!",
        "Indented line",
        "Next line",
        "Last one.",
    ]
    assert doc.render_paragraphs(doc.segments()) == [
        "  Title here\r\n\r\n  ",
        "First para. Second sentence!  \n\t",
        "Indented line\u2028",
        "Next line\u2029",
        "Last one.  \n\n",
    ]


def test_last_paragraph_separator_is_empty_when_text_ends_there():
    doc = split_document("One.\nTwo.", words, 10)
    assert [p.separator for p in doc.paragraphs] == ["\n", ""]
    doc = split_document("One.\nTwo. \t", words, 10)
    assert [p.separator for p in doc.paragraphs] == ["\n", " \t"]


def test_whitespace_without_line_break_does_not_split_paragraphs():
    doc = split_document("One.\t\u00a0 Two.   Three.", words, 10)
    assert len(doc.paragraphs) == 1
    assert doc.paragraphs[0].pieces == (
        Piece("One.", True),
        Piece("\t\u00a0 ", False),
        Piece("Two.", True),
        Piece("   ", False),
        Piece("Three.", True),
    )


def test_render_puts_outputs_between_original_whitespace():
    text = " Olá mundo.  Adeus!\r\n\r\n\tFim. "
    doc = split_document(text, words, 50, "pt")
    assert doc.segments() == ["Olá mundo.", "Adeus!", "Fim."]
    assert doc.render(["Hello world.", "Bye!", "End."]) == " Hello world.  Bye!\r\n\r\n\tEnd. "
    assert doc.render_paragraphs(["A", "B", "C"]) == [" A  B\r\n\r\n\t", "C "]
    with pytest.raises(ValueError):
        doc.render(["only one"])
    with pytest.raises(ValueError):
        doc.render_paragraphs(["a", "b", "c", "d"])


# --- splitting long sentences -------------------------------------------------------------------


def test_long_sentence_splits_at_clauses_before_words():
    sentence = (
        "Alpha beta gamma, delta epsilon zeta; eta theta: iota kappa — lambda mu nu xi "
        "omicron pi rho sigma tau upsilon."
    )
    doc = split_document(sentence, words, 6)
    check_document(doc, sentence, words, 6)
    assert doc.segments() == [
        "Alpha beta gamma,",
        "delta epsilon zeta; eta theta:",
        "iota kappa —",
        "lambda mu nu xi omicron",
        "pi rho sigma tau upsilon.",
    ]
    seps = [p.text for p in doc.paragraphs[0].pieces if not p.translate]
    assert seps == [" "] * 4


def test_consecutive_clauses_are_packed_greedily():
    sentence = "a b, c d, e f, g h, i j k l m n o p q."
    doc = split_document(sentence, words, 7)
    assert doc.segments() == ["a b, c d, e f,", "g h,", "i j k l m n", "o p q."]


def test_clause_break_needs_following_whitespace_and_keeps_it():
    sentence = "1,000,000 people came,\u00a0\tthen 2:30 passed; and more words arrived today."
    doc = split_document(sentence, words, 4)
    check_document(doc, sentence, words, 4)
    assert doc.segments()[0] == "1,000,000 people came,"
    assert doc.paragraphs[0].pieces[1] == Piece("\u00a0\t", False)


def test_single_500_char_word_splits_into_fitting_pieces():
    word = "".join(random.Random(7).choice("abcdefghij") for _ in range(500))
    count = Counter(len)
    doc = split_document(word, count, 64)
    check_document(doc, word, len, 64)
    segments = doc.segments()
    assert "".join(segments) == word
    assert [len(s) for s in segments] == [64] * 7 + [52]
    assert all(p.translate for p in doc.paragraphs[0].pieces)
    assert len(count.calls) < 60, "binary search, not one call per prefix"
    assert max(len(c) for c in count.calls) <= 500


def test_character_split_keeps_grapheme_clusters():
    word = "e\u0301" * 20 + "👩‍👩‍👧" * 5 + "🇵🇹🇧🇷" * 5 + "👍🏽" * 5 + "क्षि" * 5
    doc = split_document(word, len, 3)
    segments = doc.segments()
    assert "".join(segments) == word
    for s in segments:
        assert s[0] not in "\u0301\u200d\U0001f3fd"
        assert s[-1] not in "\u200d\u094d"
    assert "👩‍👩‍👧" in segments  # a ZWJ family is 5 code points: emitted alone, not cut
    assert all(len(s) <= 3 or s in ("👩‍👩‍👧", "क्षि") for s in segments)
    flags = [s for s in segments if "\U0001f1f5" in s or "\U0001f1e7" in s]
    assert all(len(s) % 2 == 0 for s in flags)


def test_unfittable_character_is_emitted_alone_without_looping():
    doc = split_document("abc def", lambda s: 5 * len(s), 2)
    assert doc.segments() == ["a", "b", "c", "d", "e", "f"]
    assert doc.render(doc.segments()) == "abc def"


def test_max_tokens_must_be_positive():
    with pytest.raises(ValueError):
        split_document("Hello.", words, 0)
    with pytest.raises(ValueError):
        pack_segments("Hello.", words, -1)


def test_fitting_sentences_cost_one_count_each():
    text = "First sentence here. Second one!\n\nThird, with a comma? Fourth."
    count = Counter()
    doc = split_document(text, count, 50)
    assert doc.segments() == [
        "First sentence here.",
        "Second one!",
        "Third, with a comma?",
        "Fourth.",
    ]
    assert count.calls == doc.segments()


def test_long_sentence_is_not_counted_prefix_by_prefix():
    sentence = " ".join(f"w{i}" for i in range(400)) + "."
    count = Counter()
    doc = split_document(sentence, count, 20)
    check_document(doc, sentence, words, 20)
    segments = doc.segments()
    assert [words(s) for s in segments] == [20] * 21 + [2]  # 19 words a piece, greedy
    assert " ".join(segments) == sentence
    assert len(count.calls) < 100


# --- sentences ----------------------------------------------------------------------------------


PT_NEWS = (
    "O Sr. Silva, ministro das Finanças, disse ontem que a inflação subiu 3.5% em março. "
    "«Não há motivo para alarme», afirmou o Dr. João Costa, p.ex. no setor alimentar.  "
    "A Sra. Dra. Ana Lopes não comentou. O custo foi de 1.234,56 euros?! Sim. "
    "O presidente da Câmara, Eng. Carlos Moedas, saiu sem falar aos jornalistas... "
    "Ninguém sabe porquê."
)
PT_SENTENCES = [
    "O Sr. Silva, ministro das Finanças, disse ontem que a inflação subiu 3.5% em março.",
    "«Não há motivo para alarme», afirmou o Dr. João Costa, p.ex. no setor alimentar.",
    "A Sra. Dra. Ana Lopes não comentou.",
    "O custo foi de 1.234,56 euros?!",
    "Sim.",
    "O presidente da Câmara, Eng. Carlos Moedas, saiu sem falar aos jornalistas...",
    "Ninguém sabe porquê.",
]


@pytest.mark.parametrize("language", ["pt", "pt-BR", "PT_pt"])
def test_portuguese_news_sentences(language):
    assert split_sentences(PT_NEWS, language) == PT_SENTENCES
    doc = split_document(PT_NEWS, words, 40, language)
    assert doc.segments() == PT_SENTENCES
    assert doc.paragraphs[0].pieces[3] == Piece("  ", False)


def test_portuguese_quotes_and_numbers():
    text = "Ele disse: «Vou sair.» Depois saiu. O art. 5.º foi aprovado por 120 votos."
    assert split_sentences(text, "pt") == [
        "Ele disse: «Vou sair.» Depois saiu.",
        "O art. 5.º foi aprovado por 120 votos.",
    ]


def test_portuguese_dateline_month_abbreviation_is_not_a_sentence_end():
    text = (
        "Lisboa, 14 out. (Lusa) — O Governo aprovou hoje o orçamento. "
        "Os pescadores voltaram ao mar. Ontem foi 3 mar. e ninguém saiu."
    )
    assert split_sentences(text, "pt") == [
        "Lisboa, 14 out. (Lusa) — O Governo aprovou hoje o orçamento.",
        "Os pescadores voltaram ao mar.",  # "mar" the word (sea) still ends a sentence
        "Ontem foi 3 mar. e ninguém saiu.",
    ]


def test_unknown_language_falls_back_to_english():
    text = "Mr. Smith went to Washington. He arrived at 3.5 p.m. on Monday!"
    expected = ["Mr. Smith went to Washington.", "He arrived at 3.5 p.m. on Monday!"]
    assert split_sentences(text, "en") == expected
    assert split_sentences(text, "xx") == expected
    assert split_sentences(text, "") == expected


def test_split_sentences_are_exact_substrings():
    text = "  Hello\u00a0world.\tFoo bar.  \u00a0Baz  "
    sentences = split_sentences(text)
    assert sentences == ["Hello\u00a0world.", "Foo bar.", "Baz"]
    pos = 0
    for s in sentences:
        pos = text.index(s, pos) + len(s)


def test_cjk_sentences_without_spaces():
    text = "我爱你。你好吗？很好！"
    assert split_sentences(text, "zh") == ["我爱你。", "你好吗？", "很好！"]
    doc = split_document(text, len, 10, "zh")
    assert doc.render(doc.segments()) == text


def test_long_paragraph_matches_pysbd_on_the_whole_text():
    rng = random.Random(3)
    pool = [
        "The minister, who spoke in Lisbon on Monday, said the plan was ready.",
        "Mr. Smith disagreed.",
        "Dr. Jones paid $3.50 for it at 5 p.m. yesterday.",
        "Is it over?",
        "Prices rose 2.5% in the U.S. in January.",
        "Nobody knows!",
    ]
    text = " ".join(rng.choice(pool) for _ in range(300))
    assert len(text) > 3 * segmentation._PYSBD_WINDOW
    expected = [s.strip() for s in pysbd.Segmenter(language="en", clean=False).segment(text)]
    assert split_sentences(text, "en") == expected


def test_unlocatable_or_failing_pysbd_output_falls_back(monkeypatch):
    class Fake:
        def __init__(self, sentences):
            self.sentences = sentences

        def processor(self, text):
            sentences = self.sentences

            class P:
                def process(self):
                    if sentences is None:
                        raise RuntimeError("boom")
                    return sentences

            return P()

    text = "One two.  Three four! Five six."
    cases = [
        (["One two.", "THREE FOUR!", "Five six."], ["One two.", "Three four! Five six."]),
        (None, [text]),
        (["Three four!", "Five six."], ["One two.  Three four!", "Five six."]),
        (["", "One two.", 3, "Five six."], ["One two.", "Three four! Five six."]),
    ]
    for fake, expected in cases:
        monkeypatch.setattr(segmentation, "_segmenter", lambda language, f=fake: Fake(f))
        assert split_sentences(text) == expected
        doc = split_document(text, words, 10)
        assert doc.render(doc.segments()) == text


# --- packing for summarisation ------------------------------------------------------------------


def test_pack_segments_greedy_whole_sentences():
    text = "A b c. D e f. G h i.\n\nJ k l. M n o p q r s t u v w x y z."
    chunks = pack_segments(text, words, 8)
    assert chunks == ["A b c. D e f.", "G h i.\n\nJ k l.", "M n o p q r s", "t u v w x y z."]
    check_chunks(chunks, text, words, 8)


def test_pack_segments_keeps_paragraph_breaks_inside_a_chunk():
    text = "Title\r\n\r\n  First one. Second one.\n\tThird."
    assert pack_segments(text, words, 100) == [text.strip()]


@SETTINGS
@given(articles(), st.integers(2, 40), st.sampled_from(["en", "pt"]))
def test_pack_segments_cover_text_in_order(text, max_tokens, language):
    count = Counter()
    chunks = pack_segments(text, count, max_tokens, language)
    check_chunks(chunks, text, words, max_tokens)
    # Whole sentences: where no sentence is too long, each chunk starts and ends on sentence edges.
    sentences = [s for line in text.splitlines() for s in split_sentences(line, language)]
    if all(words(s) <= max_tokens for s in sentences):
        assert all(any(c.startswith(s) for s in sentences) for c in chunks)
        assert all(any(c.endswith(s) for s in sentences) for c in chunks)
        assert sum(c.count(s) for c in chunks for s in set(sentences)) >= len(sentences)


@SETTINGS
@given(st.text(), st.integers(1, 30))
def test_pack_segments_any_text(text, max_tokens):
    check_chunks(pack_segments(text, len, max_tokens), text, len, max_tokens)


def test_pack_segments_is_greedy():
    sentences = [" ".join(["Word"] * n) + "." for n in (3, 5, 2, 7, 1, 1, 4, 6, 2)]
    text = " ".join(sentences)
    chunks = pack_segments(text, words, 10)
    check_chunks(chunks, text, words, 10)
    units = split_sentences(text)
    i = 0
    for chunk in chunks[:-1]:
        n = len(split_sentences(chunk))
        assert words(" ".join(units[i : i + n + 1])) > 10
        i += n


# --- real tokenizer -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def marian_count():
    if not MODEL_DIR.is_dir():
        pytest.skip(f"{MODEL_DIR} not present")
    transformers = pytest.importorskip("transformers")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tok = transformers.AutoTokenizer.from_pretrained(str(MODEL_DIR))
    return lambda s: len(tok(s).input_ids)


def test_real_tokenizer_pieces_fit(marian_count):
    text = (
        PT_NEWS
        + "\n\n"
        + ", ".join(["uma frase muito comprida sobre política e economia"] * 30)
        + ".\n"
        + "Palavra"
        + "x" * 500
        + " 👩‍👩‍👧🇵🇹 «fim»\u00a0e\u0301.\n"
    )
    doc = split_document(text, marian_count, 64, "pt")
    check_document(doc, text, marian_count, 64)
    assert doc.segments()[:2] == PT_SENTENCES[:2]
    check_chunks(pack_segments(text, marian_count, 64, "pt"), text, marian_count, 64)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(articles())
def test_real_tokenizer_generated_articles(marian_count, text):
    doc = split_document(text, marian_count, 64, "pt")
    check_document(doc, text, marian_count, 64)


# --- module hygiene and speed -------------------------------------------------------------------


def test_module_imports_no_heavy_dependencies():
    path = Path(segmentation.__file__)
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('seg', {str(path)!r})\n"
        "m = importlib.util.module_from_spec(spec)\n"
        "sys.modules['seg'] = m\n"
        "spec.loader.exec_module(m)\n"
        "bad = [n for n in ('grpc', 'torch', 'transformers') if n in sys.modules]\n"
        "assert not bad, bad\n"
        "print(m.split_sentences('Ok. Done.'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['Ok.', 'Done.']"


def test_20k_article_is_fast():
    rng = random.Random(11)
    pool = [
        "O governo anunciou na terça-feira que vai aumentar os impostos em 3,5 por cento, "
        "uma medida que os críticos dizem prejudicar a economia.",
        "O Sr. Silva, líder da oposição, chamou-lhe «um desastre».",
        "O Dr. Costa discordou.",
        "Segundo o INE, a inflação foi de 2.1% em jan. de 2024, p.ex. nos alimentos.",
    ]
    paragraphs, size = [], 0
    while size < 20000:
        p = " ".join(rng.choice(pool) for _ in range(rng.randint(1, 6)))
        paragraphs.append(p)
        size += len(p) + 2
    text = "\n\n".join(paragraphs)[:20000]
    split_document("Aquecimento. Pronto.", words, 64, "pt")
    start = time.perf_counter()
    doc = split_document(text, words, 64, "pt")
    elapsed = time.perf_counter() - start
    check_document(doc, text, words, 64)
    assert elapsed < 0.5, f"{elapsed * 1000:.0f} ms"


def test_paragraph_and_piece_are_frozen():
    para = Paragraph((Piece("a", True),), "\n")
    with pytest.raises(AttributeError):
        para.separator = ""


def test_concurrent_use_gives_the_same_results():
    from concurrent.futures import ThreadPoolExecutor

    texts = [PT_NEWS, PT_NEWS.upper(), "Mr. Smith left. Dr. Jones stayed!\nEnd.", "Ok. " * 300]
    texts = texts * 8
    expected = [split_document(t, words, 12, "pt").segments() for t in texts]
    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda t: split_document(t, words, 12, "pt").segments(), texts))
    assert got == expected


# -- found by the fidelity oracle (tests/test_oracle.py) ------------------------------------------


@pytest.mark.parametrize(
    ("text", "sentences"),
    [
        ("Governo anunciou antes.» Costa disse.", ["Governo anunciou antes.»", "Costa disse."]),
        ("Foi assim.» «Não foi», disse.", ["Foi assim.»", "«Não foi», disse."]),
        ("Disse que não.” Depois saiu.", ["Disse que não.”", "Depois saiu."]),
        ("Acabou.»", ["Acabou.»"]),
    ],
)
def test_a_closing_quote_stays_with_the_sentence_it_closes(text, sentences):
    """pysbd ended the sentence before its closing quote, which then began the next segment
    ("» Costa disse.") or was a segment of its own ("»"): a model sees a stray quote."""
    assert split_sentences(text, "pt") == sentences


def test_a_closing_quote_at_a_paragraph_end_is_not_a_segment_of_its_own():
    text = "Governo  anunciou de  antes.»\nCosta disse.\u2029Ele\u2009saiu.»"
    doc = split_document(text, words, 50, "pt")
    assert doc.segments() == ["Governo  anunciou de  antes.»", "Costa disse.", "Ele\u2009saiu.»"]
    check_document(doc, text, words, 50)
