"""Glossaries: request and model terms come out as required; applied entries are reported."""

import re
from pathlib import Path

import grpc
import pytest

from conftest import copy_model, make_config, needs_copy_model
from dragoman.v1 import dragoman_pb2 as pb
from dragoman.v1 import dragoman_pb2_grpc as pb_grpc
from dragoman_server.glossary import Glossary, merge
from dragoman_server.server import BackgroundServer

ARTICLE = (Path(__file__).parent / "data" / "articles" / "inflacao.txt").read_text("utf-8")


def test_protect_and_restore():
    g = Glossary([("Banco", "Bank"), ("Banco de Portugal", ""), ("INE", "Statistics Portugal")])
    p = g.protect("O Banco de Portugal e o Banco Central; o INE (INEM não).")
    assert p.text == "O GLS1 e o GLS2 Central; o GLS3 (INEM não)."  # longest first, whole words
    out, applied = p.restore("The GLS2 Central, GLS1 and GLS3 (INEM no).")
    assert out == "The Bank Central, Banco de Portugal and Statistics Portugal (INEM no)."
    assert applied == [("Banco", "Bank"), ("Banco de Portugal", ""), ("INE", "Statistics Portugal")]
    # A lost placeholder is not an applied entry.
    out, applied = p.restore("The Bank and GLS3.")
    assert applied == [("INE", "Statistics Portugal")]
    assert p.missing("The Bank and GLS3.") == [("Banco de Portugal", ""), ("Banco", "Bank")]


def test_merge_request_takes_precedence():
    assert merge({"Governo": "Government", "PS": ""}, [("Governo", "Executive")]) == (
        ("Governo", "Executive"),
        ("PS", ""),
    )


def _translate(stub, texts, glossary, target="en", mime="text/plain"):
    return stub.Translate(
        pb.TranslateRequest(
            texts=texts,
            source_language="pt",
            target_language=target,
            mime_type=mime,
            glossary=[pb.GlossaryEntry(source=s, target=t) for s, t in glossary],
        )
    ).translations


@pytest.fixture(scope="module")
def stub(server):
    with grpc.insecure_channel(server.address) as channel:
        yield pb_grpc.DragomanStub(channel)


@needs_copy_model
def test_request_glossary_through_copy_model(stub):
    glossary = [("Lisboa", "Lisbon"), ("Banco Central Europeu", ""), ("INE", "Statistics Portugal")]
    [t] = _translate(stub, [ARTICLE], glossary)
    expected = re.sub(
        r"(?<!\w)INE(?!\w)", "Statistics Portugal", ARTICLE.replace("Lisboa", "Lisbon")
    )
    assert expected.count("Statistics Portugal") == 3
    assert t.text == expected
    assert [(e.source, e.target) for e in t.applied_glossary] == [
        ("Lisboa", "Lisbon"),
        ("INE", "Statistics Portugal"),
        ("Banco Central Europeu", ""),
    ]


@needs_copy_model
def test_glossary_per_text_and_unused_terms(stub):
    texts = ["O Governo reuniu-se hoje em Lisboa.", "Nada a assinalar no Porto."]
    a, b = _translate(stub, texts, [("Lisboa", "Lisbon"), ("Faro", "Faro")])
    assert a.text == "O Governo reuniu-se hoje em Lisbon."
    assert [(e.source, e.target) for e in a.applied_glossary] == [("Lisboa", "Lisbon")]
    assert b.text == texts[1] and not b.applied_glossary


@needs_copy_model
def test_glossary_with_pivot_and_html(stub):
    [t] = _translate(stub, ["A TAP voou para Lisboa."], [("Lisboa", "Lissabon")], target="de")
    assert t.pivoted and t.text == "A TAP voou para Lissabon."
    html = '<p>O <a href="/l">Presidente da República</a> chegou a <em>Lisboa</em>.</p>'
    [t] = _translate(
        stub, [html], [("Lisboa", "Lisbon"), ("Presidente da República", "")], mime="text/html"
    )
    assert t.text == '<p>O <a href="/l">Presidente da República</a> chegou a <em>Lisbon</em>.</p>'
    assert len(t.applied_glossary) == 2


@needs_copy_model
def test_same_language_applies_glossary(stub):
    [t] = _translate(stub, ["Lisboa é a capital."], [("Lisboa", "Lisbon")], target="pt")
    assert t.text == "Lisbon é a capital." and not t.models


def test_random_model_does_not_break(server):
    with grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.DragomanStub(channel)
        [t] = stub.Translate(
            pb.TranslateRequest(
                texts=["The Prime Minister met the European Commission in Brussels."],
                source_language="en",
                target_language="pt",
                glossary=[
                    pb.GlossaryEntry(source="European Commission", target="Comissão Europeia")
                ],
            )
        ).translations
        assert "GLS" not in t.text or not t.applied_glossary
        for entry in t.applied_glossary:
            assert entry.target in t.text


@needs_copy_model
def test_model_glossary_from_config():
    model = copy_model("copy-pt-en", "pt-en") | {"glossary": {"Governo": "Government", "SNS": ""}}
    with BackgroundServer(make_config([model], warmup=False)) as running:
        with grpc.insecure_channel(running.address) as channel:
            stub = pb_grpc.DragomanStub(channel)
            [t] = _translate(stub, ["O Governo e o SNS."], [])
            assert t.text == "O Government e o SNS."
            assert {(e.source, e.target) for e in t.applied_glossary} == {
                ("Governo", "Government"),
                ("SNS", ""),
            }
            # The request's entry wins over the model's.
            [t] = _translate(stub, ["O Governo e o SNS."], [("Governo", "Executive")])
            assert t.text == "O Executive e o SNS."
