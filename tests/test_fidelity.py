"""Whole-article fidelity through the copy model: the output must equal the input exactly.

Articles are far longer than the copy model's 64-token window, with quotes, numbers, emoji, lists,
CRLF and odd whitespace, so every dropped, repeated or reordered piece at a segment boundary, every
lost line break or changed character shows as a mismatch. Figures are printed (run with -s).
"""

from pathlib import Path

import grpc
import pytest

from conftest import needs_copy_model
from dragoman.v1 import dragoman_pb2 as pb
from dragoman.v1 import dragoman_pb2_grpc as pb_grpc

DATA = Path(__file__).parent / "data" / "articles"
PLAIN = sorted(DATA.glob("*.txt"))
HTML = sorted(DATA.glob("*.html"))

pytestmark = needs_copy_model


def read(path: Path) -> str:
    return path.read_bytes().decode("utf-8")  # keeps \r\n as it is


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(server.address) as channel:
        yield pb_grpc.DragomanStub(channel)


@pytest.fixture(autouse=True)
def cold_cache(server):
    """Each test generates every segment: the translation cache must not hide a model error."""
    server.server.dataplane.cache.clear()


TOTAL = {"articles": 0, "chars": 0, "mismatches": 0}


@pytest.fixture(scope="module", autouse=True)
def totals():
    yield
    print(
        f"\n[fidelity] TOTAL: articles={TOTAL['articles']} chars={TOTAL['chars']} "
        f"mismatches={TOTAL['mismatches']}"
    )


def _report(label: str, pairs: list[tuple[str, str]]) -> None:
    chars = sum(len(a) for a, _ in pairs)
    mismatches = sum(a != b for a, b in pairs)
    TOTAL["articles"] += len(pairs)
    TOTAL["chars"] += chars
    TOTAL["mismatches"] += mismatches
    print(f"\n[fidelity] {label}: articles={len(pairs)} chars={chars} mismatches={mismatches}")
    for a, b in pairs:
        if a != b:
            i = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
            i = min(len(a), len(b)) if i is None else i
            print(f"  first difference at {i}: {a[i - 20 : i + 40]!r} vs {b[i - 20 : i + 40]!r}")
    assert mismatches == 0


def test_articles_are_long():
    assert len(PLAIN) >= 4 and len(HTML) >= 2
    for path in PLAIN + HTML:
        assert len(read(path)) > 800, path  # many times a 64-token window (~200 chars)


def test_translate_each_article(stub):
    pairs = []
    for path in PLAIN:
        text = read(path)
        response = stub.Translate(
            pb.TranslateRequest(texts=[text], source_language="pt", target_language="en")
        )
        pairs.append((text, response.translations[0].text))
    for path in HTML:
        text = read(path)
        response = stub.Translate(
            pb.TranslateRequest(
                texts=[text], source_language="pt", target_language="en", mime_type="text/html"
            )
        )
        pairs.append((text, response.translations[0].text))
    _report("Translate, one article a call", pairs)


def test_translate_batched(stub):
    texts = [read(p) for p in PLAIN]
    response = stub.Translate(
        pb.TranslateRequest(texts=texts, source_language="pt", target_language="en")
    )
    _report(
        "Translate, all plain articles in one call",
        [(t, r.text) for t, r in zip(texts, response.translations, strict=True)],
    )
    htmls = [read(p) for p in HTML]
    response = stub.Translate(
        pb.TranslateRequest(
            texts=htmls, source_language="pt", target_language="en", mime_type="text/html"
        )
    )
    _report(
        "Translate, all HTML pages in one call",
        [(t, r.text) for t, r in zip(htmls, response.translations, strict=True)],
    )


def test_translate_stream_joined(stub):
    for mime, paths in (("text/plain", PLAIN), ("text/html", HTML)):
        texts = [read(p) for p in paths]
        joined = [""] * len(texts)
        lasts = 0
        for part in stub.TranslateStream(
            pb.TranslateRequest(
                texts=texts, source_language="pt", target_language="en", mime_type=mime
            )
        ):
            joined[part.text_index] += part.text
            lasts += part.last
        assert lasts == len(texts)
        _report(f"TranslateStream joined ({mime})", list(zip(texts, joined, strict=True)))


def test_pivot_keeps_articles(stub):
    """pt -> de pivots through en (two copy models): still exact."""
    texts = [read(p) for p in PLAIN[:2]]
    response = stub.Translate(
        pb.TranslateRequest(texts=texts, source_language="pt", target_language="de")
    )
    assert all(t.pivoted for t in response.translations)
    _report(
        "Translate pt->de via en",
        [(t, r.text) for t, r in zip(texts, response.translations, strict=True)],
    )


def _variants(text: str) -> list[str]:
    """Harder layouts of the same copy: one huge paragraph, CRLF + tabs + NBSP, emoji sequences."""
    one_paragraph = " ".join(text.split())
    odd = text.replace("\n", "\r\n").replace(". ", ".  \t").replace(" de ", " de\u00a0")
    emoji = text.replace("\n\n", " 👩‍👩‍👧 🇵🇹 👍🏽\n\n", 2)
    return [one_paragraph, odd, emoji]


def test_layout_variants(stub):
    texts = [v for p in PLAIN for v in _variants(read(p))]
    response = stub.Translate(
        pb.TranslateRequest(texts=texts, source_language="pt", target_language="en")
    )
    _report(
        "Translate, layout variants (one paragraph, CRLF/tabs/NBSP, emoji)",
        [(t, r.text) for t, r in zip(texts, response.translations, strict=True)],
    )
