"""HTML translation: the parser keeps everything but text exactly; protected elements stay."""

from pathlib import Path

import grpc
import pytest

from conftest import needs_copy_model
from dragoman.v1 import dragoman_pb2 as pb
from dragoman.v1 import dragoman_pb2_grpc as pb_grpc
from dragoman_server.markup import parse_html, text_content

DATA = Path(__file__).parent / "data" / "articles"
PAGE = (DATA / "sismo.html").read_text("utf-8")


def test_render_of_texts_is_the_input():
    for path in DATA.glob("*.html"):
        source = path.read_text("utf-8")
        doc = parse_html(source)
        assert doc.render(doc.texts()) == source


@pytest.mark.parametrize(
    "source",
    [
        "",
        "plain text, no tags",
        "<p>unclosed <b>bold",
        "<p>a</p><!-- c --><p>b &amp c &#x41; &#65 &unknown; AT&T 3 < 5 > 2</p>",
        "<![CDATA[x]]><?php echo 1; ?><p>x</p></div></span>",
        "<p>Ele disse <x1>isto</x1></p>",
        "<p>\u00a0\n\t<em>  </em>  </p>",
    ],
)
def test_odd_markup_round_trips(source):
    doc = parse_html(source)
    assert doc.render(doc.texts()) == source


def test_blocks_and_placeholders():
    texts = parse_html(PAGE).texts()
    joined = "\n".join(texts)
    # Inline tags stay inside their sentence as placeholders.
    assert any("<x1>vários concelhos</x1>" in t for t in texts)
    assert any("comandante <x1>Carlos Guerra</x1>" in t for t in texts)
    # Entities are decoded for the model.
    assert "Lisboa & Setúbal" in joined and "\u201cNão há registo" in joined
    # Protected content never reaches the model.
    for secret in (
        "não traduzir",
        "console.log",
        "curl https",
        "Portal do Clima",
        "Estação",
        "Conteúdo patrocinado",
        "Assinatura",
        "font-weight",
        "início do artigo",
    ):
        assert secret not in joined, secret
    # An inline protected element is one atom in its sentence.
    assert any("use o comando <x1/> ou visite o <x2/>." in t for t in texts)


def test_translated_text_is_put_back_with_tags_and_entities():
    doc = parse_html(
        '<p>O <a href="/x" title="t">ministro</a> disse &#8220;sim&#8221; &amp; saiu.</p>'
    )
    [text] = doc.texts()
    assert text == "O <x1>ministro</x1> disse \u201csim\u201d & saiu."
    out = doc.render(["The <x1>minister</x1> said \u201cyes\u201d & left."])
    assert (
        out == '<p>The <a href="/x" title="t">minister</a> said &#8220;yes&#8221; &amp; left.</p>'
    )
    # Word order changes: the tag follows its words.
    out = doc.render(["Disse o <x1>ministro</x1>: sim."])
    assert out == '<p>Disse o <a href="/x" title="t">ministro</a>: sim.</p>'
    # A model that drops the placeholders: tags come back at the same relative place, balanced.
    out = doc.render(["O ministro disse sim e saiu."])
    assert out.count('<a href="/x" title="t">') == 1 and out.count("</a>") == 1
    assert out.index("<a") < out.index("</a>")
    # Invented placeholders are dropped; a new < is escaped.
    assert doc.render(["a <x9>b</x9> < c"]).startswith("<p>")
    assert "&lt; c" in doc.render(["a <x9>b</x9> < c"]) and "x9" not in doc.render(["a <x9>b"])


def test_text_content_for_summaries():
    text = text_content(PAGE)
    assert "Sismo de magnitude 4,7 sentido em Lisboa & Setúbal" in text
    assert "<" not in text and "não traduzir" not in text


@needs_copy_model
def test_html_through_the_service(server):
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.DragomanStub(channel)
        fragment = '<p>O <em>ministro</em> disse &laquo;não&raquo;.</p><script>var x = "<p>a</p>";</script>'
        response = stub.Translate(
            pb.TranslateRequest(
                texts=[fragment], source_language="pt", target_language="en", mime_type="text/html"
            )
        )
        assert response.translations[0].text == fragment
        # HTML summarisation reads the text content (tiny random model: just the path).
        summary = stub.Summarize(
            pb.SummarizeRequest(
                text=PAGE, source_language="pt", mime_type="text/html", max_words=20
            )
        )
        assert summary.path == "summarize" and len(summary.summary.split()) <= 20
