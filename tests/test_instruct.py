"""Instruction (decoder-only chat) models through the real server and client.

The fidelity oracle is ../shared/models/copy-chat served with `prompt_template = "{text}"` and no
system prompt: its correct answer is its input. It is imperfect (its README), so every text is
first checked to copy directly, in-process, through its chat template; the service must then return
it exactly, and any difference is the service's. Tiny random Qwen2 and Llama chat models (built by
model_factory) exercise the built-in prompts, streaming and cancellation.
"""

import asyncio
import json
import time
from functools import lru_cache

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dragoman
from conftest import COPY_MODEL, ROOT, copy_model, make_config
from dragoman.v1 import dragoman_pb2 as pb
from dragoman.v1 import dragoman_pb2_grpc as pb_grpc
from dragoman_server.errors import ConfigError
from dragoman_server.prompts import unwrap
from dragoman_server.server import BackgroundServer
from dragoman_server.settings import Config

COPY_CHAT = ROOT.parent / "shared" / "models" / "copy-chat"

pytestmark = pytest.mark.skipif(
    not (COPY_CHAT.is_dir() and COPY_MODEL.is_dir()),
    reason="../shared/models/copy-chat or copy-pt-en is not beside this checkout",
)


def chat(name: str, task: str, languages: list[str], **extra) -> dict:
    """copy-chat as a plain copier: the prompt is the text, no system prompt."""
    return {
        "name": name,
        "task": task,
        "source": str(COPY_CHAT),
        "languages": languages,
        "prompt_template": "{text}",
        "system_prompt": "",
        **extra,
    }


@lru_cache(maxsize=1)
def _copy_chat():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return (
        AutoTokenizer.from_pretrained(COPY_CHAT),
        AutoModelForCausalLM.from_pretrained(COPY_CHAT).eval(),
    )


@lru_cache(maxsize=4096)
def copies_directly(text: str) -> bool:
    """Whether copy-chat, in-process through its chat template, answers with `text` exactly."""
    import torch

    tokenizer, model = _copy_chat()
    # The text as plain text (control-token lookalikes as characters), inside the chat template.
    before, after = tokenizer.apply_chat_template(
        [{"role": "user", "content": "\ue000"}], add_generation_prompt=True, tokenize=False
    ).split("\ue000")
    ids = (
        tokenizer(before, add_special_tokens=False).input_ids
        + tokenizer(text, add_special_tokens=False, split_special_tokens=True).input_ids
        + tokenizer(after, add_special_tokens=False).input_ids
    )
    with torch.inference_mode():
        out = model.generate(torch.tensor([ids]), max_new_tokens=64, do_sample=False)
    answer = tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True)
    return answer == text


@pytest.fixture(scope="module")
def chat_models(tmp_path_factory):
    from model_factory import build_tiny_llama_chat, build_tiny_qwen2_chat

    root = tmp_path_factory.mktemp("chat-models")
    return {
        "qwen": build_tiny_qwen2_chat(root / "qwen", max_new_tokens=1000),
        "llama": build_tiny_llama_chat(root / "llama"),
        "no-template": build_tiny_qwen2_chat(root / "no-template", chat_template=None),
    }


@pytest.fixture(scope="module")
def instruct_server(chat_models):
    """copy-chat for pt<->en translation (continuous) and es-en (static), and for pt/en
    summaries; copy-chat echoing a preamble for it-en; the seq2seq copy model for en-de; tiny
    random Qwen2 (fr-en) and Llama (fr summaries); a decoder-only model with no chat template."""
    config = make_config(
        [
            chat("chat", "translation", ["pt-en", "en-pt"]),
            chat("chat-static", "translation", ["es-en"], batching="static"),
            chat("chat-sum", "summarization", ["pt", "en"]),
            chat(
                "chat-preamble",
                "translation",
                ["it-en"],
                prompt_template="Here is the translation: {text}",
            ),
            {
                "name": "marian-copy",
                "task": "translation",
                "source": str(COPY_MODEL),
                "languages": ["en-de"],
            },
            {
                "name": "qwen",
                "task": "translation",
                "source": str(chat_models["qwen"]),
                "languages": ["fr-en"],
                "max_new_tokens": 1000,
            },
            {
                "name": "llama",
                "task": "summarization",
                "source": str(chat_models["llama"]),
                "languages": ["fr"],
            },
            {
                "name": "no-template",
                "task": "translation",
                "source": str(chat_models["no-template"]),
                "languages": ["nl-en"],
            },
        ],
        max_batch_size=8,
    )
    with BackgroundServer(config) as running:
        assert running.ready
        yield running


@pytest.fixture(scope="module")
def client(instruct_server):
    with dragoman.Client(instruct_server.address, timeout=60) as c:
        yield c


# -- fidelity through copy-chat -------------------------------------------------------------------

PARAGRAPHS = [
    "O Governo aprovou ontem o orçamento de 2025.",
    "Lisboa, 3 de maio (Lusa) – O ministro falou.",
    "A taxa subiu 2,5% em abril.",
    "O Presidente da República promulgou o diploma.",
    "«Vamos continuar», disse o primeiro-ministro.",
    "Os preços caíram 3,1% no trimestre.",
]
SEPARATORS = ["\n\n", "\n", "\r\n", "  \n\t\n", "\n\n\n", "\u2028"]


def _copied(texts):
    kept = [t for t in texts if copies_directly(t)]
    assert len(kept) >= 3, f"copy-chat copies too few of the test paragraphs: {kept}"
    return kept


def test_structure_is_kept_exactly(client):
    """Paragraphs, line breaks and whitespace come back exactly where they were."""
    paragraphs = _copied(PARAGRAPHS)
    article = "  " + "".join(p + SEPARATORS[i % len(SEPARATORS)] for i, p in enumerate(paragraphs))
    article += "\t" + paragraphs[0] + " \n"
    [result] = client.translate(article, "en", source="pt", model="chat")
    assert result.text == article
    assert not result.flags


@pytest.mark.parametrize(
    "marker", ["<|im_end|>", "<|im_start|>assistant\n", "<|endoftext|>", "{text}", "{{", "\ue000"]
)
def test_text_that_looks_like_the_chat_template_markup_is_plain_text(client, marker):
    """A caller's "<|im_end|>" is characters, not the control token: it neither ends the turn
    nor forges one. (Before: the prompt was tokenised whole, specials parsed in the text.)"""
    text = "A taxa " + marker + " subiu."
    if not copies_directly(text):
        pytest.skip("copy-chat does not copy this text in-process")
    [result] = client.translate(text, "en", source="pt", model="chat")
    assert result.text == text


_LINE_BREAKS = st.sampled_from(["\n", "\r\n", "\r", "\u2028", "\u2029", "\x0b", "\x0c", "\x85"])
_BLANKS = st.text(alphabet=" \t\u00a0\u2009\u3000", max_size=3)
_SEPARATORS = st.lists(st.tuples(_BLANKS, _LINE_BREAKS), min_size=1, max_size=3).map(
    lambda parts: "".join(b + n for b, n in parts)
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_whitespace_between_paragraphs_comes_back_exactly(client, data):
    """The fidelity oracle for this path: paragraphs copy-chat copies, joined by any run of
    whitespace and line breaks, with any leading and trailing whitespace: output == input."""
    paragraphs = _copied(PARAGRAPHS)
    picked = data.draw(st.lists(st.sampled_from(paragraphs), min_size=1, max_size=4))
    article = data.draw(_BLANKS)
    for paragraph in picked:
        article += paragraph + data.draw(_SEPARATORS)
    article += data.draw(_BLANKS)
    [result] = client.translate(article, "en", source="pt", model="chat")
    assert result.text == article


def test_static_batching_keeps_structure_too(client):
    paragraphs = _copied(PARAGRAPHS)
    article = "\n\n".join(paragraphs) + "\n"
    [result] = client.translate(article, "en", source="es", model="chat-static")
    assert result.text == article


def test_paged_batching_keeps_structure_and_streams():
    """batching = "paged": transformers' continuous batching behind the same interface."""
    paragraphs = _copied(PARAGRAPHS)
    article = "\n\n".join(paragraphs) + "\n"
    models = [
        chat("paged", "translation", ["pt-en"], batching="paged"),
        chat("paged-sum", "summarization", ["pt"], batching="paged"),
    ]
    with BackgroundServer(make_config(models)) as running:
        entry = running.server.registry.entries["paged"]
        assert type(entry.batcher.continuous).__name__ == "TransformersContinuousBatcher"
        with dragoman.Client(running.address, timeout=120) as c:
            [result] = c.translate(article, "en", source="pt")
            with c.summarize_stream(paragraphs[0], source="pt", max_words=50) as stream:
                chunks = list(stream)
    assert result.text == article
    assert chunks[-1].summary.summary == paragraphs[0] and len(chunks) > 2


def test_long_paragraph_is_split_to_fit_the_window_and_rejoined(client, instruct_server):
    """A paragraph over the unit budget (31 text tokens for copy-chat) is split at sentences."""
    engine = instruct_server.server.registry.entries["chat"].engine
    sentences = _copied(PARAGRAPHS)
    paragraph = " ".join(sentences)
    assert engine.count_tokens([paragraph])[0] > engine.max_input_tokens
    text = paragraph + "\n\n" + sentences[0]
    [result] = client.translate(text, "en", source="pt", model="chat")
    assert result.text == text


def test_html_inline_tags_come_back_intact(client):
    from dragoman_server.markup import parse_html

    html = (
        "<p>O <b>Governo</b> aprovou <i>ontem</i>.</p>\n<p>A taxa subiu <b>2,5%</b> em abril.</p>"
        '\n<ul><li>Os preços caíram <em>3,1%</em> no <a href="/t">trimestre</a>.</li></ul>'
    )
    for block in parse_html(html).texts():  # as the model sees them: tags as placeholders
        assert copies_directly(block), block
    [result] = client.translate(html, "en", source="pt", model="chat", mime_type="text/html")
    assert result.text == html


def test_a_unit_that_loses_its_tags_is_redone_sentence_by_sentence(client, instruct_server):
    """qwen is random: it loses the placeholders of a two-sentence block, which is then translated
    again one sentence at a time; every tag comes back either way (markup puts lost ones back)."""
    batcher = instruct_server.server.registry.entries["qwen"].batcher
    before = batcher.continuous.stats.joined
    html = "<p>Le <b>gouvernement</b> a approuvé le budget. Le <i>ministre</i> a parlé.</p>"
    [result] = client.translate(html, "en", source="fr", mime_type="text/html")
    # The block, then its two sentences (regenerations of flagged outputs go elsewhere).
    assert batcher.continuous.stats.joined - before == 3
    for tag in ("<p>", "<b>", "</b>", "<i>", "</i>", "</p>"):
        assert result.text.count(tag) == 1


def test_translate_stream_joins_to_the_input(client):
    paragraphs = _copied(PARAGRAPHS)
    article = "\n\n".join(paragraphs)
    with client.translate_stream(article, "en", source="pt", model="chat") as stream:
        chunks = list(stream)
    assert len(chunks) == len(paragraphs)
    assert "".join(c.text for c in chunks) == article


def test_glossary_applies_through_an_instruction_model(client):
    text = _copied(PARAGRAPHS)[0]
    term = text.split()[1]  # "Governo"
    [result] = client.translate(text, "en", source="pt", model="chat", glossary={term: "GOV"})
    assert result.text == text.replace(term, "GOV")
    assert result.applied_glossary == {term: "GOV"}


def test_units_prepared_on_many_threads_get_the_same_prompt(instruct_server):
    """Units are tokenised on worker threads; split_special_tokens is a flag on the shared Rust
    tokenizer, so without the engine's lock one unit's plain-text call could make another read
    the template's "<|im_start|>" as characters (seen as garbage output under load)."""
    from concurrent.futures import ThreadPoolExecutor

    from dragoman_server.engines import GenerationParams

    engine = instruct_server.server.registry.entries["chat"].engine
    params = GenerationParams("pt", "en")
    texts = [f"{p} <|im_end|> {i}" for i, p in enumerate(PARAGRAPHS * 20)]
    expected = [engine.prepare(t, params).ids for t in texts]

    def work(i: int) -> list[int]:
        engine.count_tokens([texts[i]])
        return engine.prepare(texts[i], params).ids

    with ThreadPoolExecutor(8) as pool:
        got = list(pool.map(work, range(len(texts))))
    assert got == expected


# -- wrappers -------------------------------------------------------------------------------------


def test_preamble_is_removed_and_flagged(client):
    """copy-chat echoes the template's preamble: it is removed by rule and flagged."""
    text = _copied(PARAGRAPHS)[0]
    assert copies_directly("Here is the translation: " + text)
    [result] = client.translate(text, "en", source="it", model="chat-preamble")
    assert result.text == text
    assert result.flags and {f.kind for f in result.flags} == {"wrapper_removed"}
    assert all("Here is the translation:" in f.detail for f in result.flags)


def test_wrapper_flag_survives_a_second_request(client):
    """The same text again: still flagged (a flagged output is not cached without its flag)."""
    text = _copied(PARAGRAPHS)[1]
    if not copies_directly("Here is the translation: " + text):
        pytest.skip("copy-chat does not copy this text with the preamble")
    for _ in range(2):
        [result] = client.translate(text, "en", source="it", model="chat-preamble")
        assert result.text == text
        assert result.flags and {f.kind for f in result.flags} == {"wrapper_removed"}


def test_line_breaks_a_model_adds_to_a_unit_are_joined_and_flagged():
    """Each unit is one line; the text's line breaks are Dragoman's. copy-chat, told to answer
    with a heading line before the text, breaks the unit in two: joined, flagged."""
    text = _copied(PARAGRAPHS)[0]
    if not copies_directly("Lisboa.\n" + text):
        pytest.skip("copy-chat does not copy this text with the heading")
    model = chat("heading", "translation", ["pt-en"], prompt_template="Lisboa.\n{text}")
    with BackgroundServer(make_config([model])) as running:
        with dragoman.Client(running.address, timeout=60) as c:
            [result] = c.translate(text + "\n\n" + text, "en", source="pt")
    assert result.text == "Lisboa. " + text + "\n\n" + "Lisboa. " + text
    assert [f.kind for f in result.flags] == ["line_breaks_joined"] * 2


def test_a_source_that_starts_like_a_preamble_is_not_cut(client):
    text = "Here is the translation: " + _copied(PARAGRAPHS)[0]
    if not copies_directly(text):
        pytest.skip("copy-chat does not copy this text")
    [result] = client.translate(text, "pt", source="en", model="chat")
    assert result.text == text
    assert not result.flags


@pytest.mark.parametrize(
    "source, output, expected",
    [
        ("Olá mundo.", "Here is the translation: Hello world.", "Hello world."),
        ("Olá.", "Sure! Here's the English translation:\n\nHello.", "Hello."),
        ("Olá.", "```\nHello.\n```", "Hello."),
        ("Olá.", "“Hello.”", "Hello."),
        ("Olá.", "Hello.\n\nNote: I kept the tone.", "Hello."),
        ("«Olá.»", "«Hello.»", "«Hello.»"),  # the source's own quotes stay
        ("Política: x.", "Translation policy: x.", "Translation policy: x."),  # not a preamble
        ("Tradução: x.", "Translation: x.", "Translation: x."),  # the source has it
        ("Olá.", "Translation:", "Translation:"),  # never empties an output
    ],
)
def test_unwrap_removes_only_what_the_source_lacks(source, output, expected):
    assert unwrap(source, output).text == expected


def test_language_names_in_the_built_in_prompt():
    """The built-in prompts name languages (langcodes with its data), not codes."""
    from dragoman_server.prompts import language_name

    assert language_name("pt") == "Portuguese"
    assert language_name("pt-BR") == "Portuguese (Brazil)"
    assert language_name("en") == "English"


def test_unwrap_never_changes_a_faithful_copy():
    for text in [*PARAGRAPHS, "Summary: the day.", '"Quoted whole."', "Note: x", "```\ncode\n```"]:
        assert unwrap(text, text).text == text


# -- summaries ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "summary, words, expected",
    [
        ("* First point.\n* Second point.", 10, "- First point.\n- Second point."),
        ("1. One two three.\n2. Four five six.", 4, "- One two three."),
        ("1. One two three four five.", 2, "- One two"),
        ("A sentence. Another one.", 10, "- A sentence.\n- Another one."),
    ],
)
def test_instruction_model_bullets_are_normalised(summary, words, expected):
    from dragoman_server.summarization import _shape_instruct

    assert _shape_instruct(summary, words, "bullets", "en") == expected


def test_cross_lingual_summary_in_one_step(client):
    text = _copied(PARAGRAPHS)[0]
    summary = client.summarize(text, source="pt", to="en", model="chat-sum", max_words=50)
    assert summary.path == "summarize-cross-lingual"
    assert summary.models == ["chat-sum"]
    assert summary.summary == text  # copy-chat: the "summary" is the text


def test_cross_lingual_summary_is_found_without_naming_the_model(client):
    text = _copied(PARAGRAPHS)[0]
    summary = client.summarize(text, source="pt", to="en", max_words=50)
    assert (summary.path, summary.models) == ("summarize-cross-lingual", ["chat-sum"])


def test_long_text_is_summarised_chunk_then_summary(client, instruct_server):
    paragraphs = _copied(PARAGRAPHS)
    text = "\n\n".join(paragraphs * 3)
    engine = instruct_server.server.registry.entries["chat-sum"].engine
    assert engine.count_tokens([text])[0] > engine.window
    summary = client.summarize(text, source="pt", model="chat-sum", max_words=20)
    assert summary.rounds >= 2
    assert 0 < len(summary.summary.split()) <= 20


def test_a_long_article_beyond_the_kv_cache_is_chunked_not_refused(tmp_path):
    """Window 1024, but 1 MiB holds ~100 tokens of this model's KV cache (256 without the step's
    working memory that kv_cache_mb also covers): the article goes chunk by chunk instead of
    being refused as too long for the cache."""
    from model_factory import build_tiny_qwen2_chat

    path = build_tiny_qwen2_chat(tmp_path / "wide", hidden_size=256, heads=4, kv_heads=4)
    model = {
        "name": "wide",
        "task": "summarization",
        "source": str(path),
        "languages": ["fr"],
        "prompt_template": "{text}",
        "system_prompt": "",
        "kv_cache_mb": 1,
    }
    text = " ".join(f"Le budget {i} de l'État a été approuvé." for i in range(12))
    with BackgroundServer(make_config([model])) as running:
        batcher = running.server.registry.entries["wide"].batcher
        cache = batcher.continuous
        assert batcher.context_tokens == cache.cache_tokens < 256
        assert cache.cache_tokens * cache.bytes_per_token + cache.step_bytes <= 2**20
        engine = batcher.engine
        assert batcher.context_tokens < engine.count_tokens([text])[0] < engine.window
        with dragoman.Client(running.address, timeout=120) as c:
            summary = c.summarize(text, source="fr", max_words=20)
        assert batcher.continuous.stats.joined >= 3  # warm-up, then two chunks or more
        assert batcher.continuous.stats.peak_kv_bytes <= 2**20
    assert summary.models == ["wide"] and summary.rounds >= 1


def test_translation_units_fit_the_kv_cache(tmp_path):
    """Units are cut to what the KV cache holds (65 tokens here, window 1024), not refused; a
    cache too small for any unit fails the model's load in one line."""
    from model_factory import build_tiny_qwen2_chat

    path = build_tiny_qwen2_chat(tmp_path / "wide", hidden_size=256, layers=4, kv_heads=4)
    base = {"task": "translation", "source": str(path), "kv_cache_mb": 1}
    models = [
        {**base, "name": "wide", "languages": ["fr-en"], "prompt_template": "{text}"},
        # The built-in prompt is ~240 tokens of this tiny vocabulary: no room left for text.
        {**base, "name": "cramped", "languages": ["de-en"]},
    ]
    text = " ".join(f"Le budget {i} de l'État a été approuvé." for i in range(12))
    with BackgroundServer(make_config(models)) as running:
        entries = running.server.registry.entries
        engine = entries["wide"].engine
        assert engine.context == entries["wide"].batcher.continuous.cache_tokens < 128
        assert engine.count_tokens([text])[0] > engine.max_input_tokens
        with dragoman.Client(running.address, timeout=120) as c:
            [result] = c.translate(text, "en", source="fr")
        assert result.route[0].model == "wide"
        assert entries["cramped"].state.value == "failed"
        assert "kv_cache_mb" in entries["cramped"].error and "\n" not in entries["cramped"].error
        assert entries["cramped"].error.count("cramped") == 1


def test_summarize_stream_sends_deltas_then_the_result(client):
    text = _copied(PARAGRAPHS)[0]
    with client.summarize_stream(text, source="pt", to="en", max_words=50) as stream:
        chunks = list(stream)
    deltas = [c.delta for c in chunks if c.summary is None]
    assert len(deltas) > 1, "the summary came in one piece, not as generated"
    assert chunks[-1].summary is not None
    assert "".join(deltas) + chunks[-1].delta == text
    assert chunks[-1].summary.summary == text
    assert chunks[-1].summary.path == "summarize-cross-lingual"


def test_cli_summarize_stream(instruct_server, tmp_path, capsys):
    from dragoman.cli import main

    text = _copied(PARAGRAPHS)[0]
    path = tmp_path / "article.txt"
    path.write_text(text, "utf-8")
    argv = ["summarize", "--server", instruct_server.address, "--from", "pt", "--to", "en"]
    assert main([*argv, "--max-words", "50", "--stream", str(path)]) == 0
    assert capsys.readouterr().out == text + "\n"
    assert main([*argv, "--max-words", "3", "--stream", str(path)]) == 0
    # The streamed text (its output budget follows max_words), then the summary to keep (cut to
    # three words) after a rule line.
    streamed, rule, kept = capsys.readouterr().out.rpartition("\n---\n")
    assert rule and text.startswith(streamed) and len(streamed.split()) > 3
    assert kept == " ".join(text.split()[:3]) + "\n"
    assert main([*argv, "--max-words", "50", "--stream", "--json", str(path)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) > 2 and lines[-1]["summary"]["path"] == "summarize-cross-lingual"
    assert "".join(line["delta"] for line in lines) == text


def test_summarize_stream_over_http_is_ndjson():
    """POST /v1/summarize:stream (the proto's google.api.http rule): one JSON message a line."""
    import http.client

    text = _copied(PARAGRAPHS)[0]
    config = make_config([chat("chat-sum", "summarization", ["pt", "en"])], http=True, http_port=0)
    with BackgroundServer(config) as running:
        connection = http.client.HTTPConnection("127.0.0.1", running.http_port, timeout=60)
        body = {"text": text, "sourceLanguage": "pt", "targetLanguage": "en", "maxWords": 50}
        connection.request("POST", "/v1/summarize:stream", body=json.dumps(body))
        response = connection.getresponse()
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in response.read().splitlines()]
        connection.close()
    assert len(lines) > 2
    assert "".join(line.get("delta", "") for line in lines) == text
    assert lines[-1]["done"]["summary"] == text
    assert lines[-1]["done"]["path"] == "summarize-cross-lingual"


def test_summarize_stream_of_a_seq2seq_path_sends_the_result(client):
    """Paths without an instruction model answer with the result alone (one message)."""
    with pytest.raises(dragoman.DragomanError) as caught:
        list(client.summarize_stream("Hallo Welt.", source="de"))
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_async_summarize_stream(instruct_server):
    text = _copied(PARAGRAPHS)[0]

    async def main():
        async with dragoman.AsyncClient(instruct_server.address, timeout=60) as c:
            return [chunk async for chunk in c.summarize_stream(text, source="pt", max_words=50)]

    chunks = asyncio.run(main())
    assert chunks[-1].summary.summary == text
    assert chunks[-1].summary.path == "summarize"


def test_built_in_prompts_on_random_models(client):
    """The built-in templates through real chat templates (Qwen2 ChatML, Llama 3)."""
    [translation] = client.translate("Le gouvernement a approuvé le budget.", "en", source="fr")
    assert translation.route and translation.route[0].model == "qwen"
    summary = client.summarize("Le gouvernement a approuvé le budget.", source="fr", max_words=10)
    assert summary.models == ["llama"]
    assert len(summary.summary.split()) <= 10


# -- mixing and errors ----------------------------------------------------------------------------


def test_seq2seq_and_instruction_models_serve_side_by_side(client):
    [seq2seq] = client.translate("The minister spoke.", "de", source="en")
    [instruct] = client.translate(_copied(PARAGRAPHS)[0], "en", source="pt")
    assert seq2seq.text == "The minister spoke."
    assert [h.model for h in seq2seq.route] == ["marian-copy"]
    assert [h.model for h in instruct.route] == ["chat"]
    states = {m.name: m.state for m in client.models()}
    assert states["marian-copy"] == states["chat"] == states["qwen"] == "ready"


def test_decoder_only_model_without_chat_template_fails_in_one_line(client):
    [info] = [m for m in client.models() if m.name == "no-template"]
    assert info.state == "failed"
    assert "chat template" in info.error and "prompt_template" in info.error
    assert "\n" not in info.error
    with pytest.raises(dragoman.DragomanError) as caught:
        client.translate("Hallo.", "en", source="nl")
    assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("prompt_template", "Translate {txt}", "prompt_template must be"),
        ("prompt_template", "no text field", "{text}"),
        ("prompt_template", "{text} {", "prompt_template must be"),
        ("prompt_template", "{text!r}", "prompt_template must be"),
        ("prompt_template", "{text:>40}", "prompt_template must be"),
        ("prompt_template", "{0} {text}", "prompt_template must be"),
        ("batching", "dynamic", "continuous, paged, static"),
        ("kv_cache_mb", 0, "kv_cache_mb must be"),
        ("context_window", 8, "context_window must be"),
        ("system_prompt", 3, "system_prompt must be"),
    ],
)
def test_bad_instruction_settings_are_one_line(key, value, words):
    with pytest.raises(ConfigError) as caught:
        Config.from_dict({"models": [chat("m", "translation", ["pt-en"], **{key: value})]})
    message = str(caught.value)
    assert words in message and "\n" not in message and "m" in message


def test_instruction_keys_on_a_seq2seq_model_fail_its_load():
    config = make_config(
        [
            {
                "name": "seq2seq",
                "task": "translation",
                "source": str(COPY_MODEL),
                "languages": ["pt-en"],
                "prompt_template": "{text}",
            }
        ]
    )
    with BackgroundServer(config) as running:
        entry = running.server.registry.entries["seq2seq"]
        assert entry.state.value == "failed"
        assert "instruction" in entry.error and "\n" not in entry.error


def test_ctranslate2_backend_on_an_instruction_model_fails_its_load_unconverted(
    chat_models, tmp_path, monkeypatch
):
    """CTranslate2 serves seq2seq models only (bench chat, mode e: no faster than continuous
    batching for instruction models); asking for it is one line, before any conversion."""
    cache = tmp_path / "ct2-cache"
    monkeypatch.setenv("DRAGOMAN_CT2_CACHE", str(cache))
    model = {
        "name": "qwen-ct2",
        "task": "translation",
        "source": str(chat_models["qwen"]),
        "languages": ["fr-en"],
        "backend": "ctranslate2",
    }
    with BackgroundServer(make_config([model, copy_model("marian", "en-de")])) as running:
        entry = running.server.registry.entries["qwen-ct2"]
        assert entry.state.value == "failed"
        assert "ctranslate2" in entry.error and "decoder-only" in entry.error
        assert "remove `backend`" in entry.error and "\n" not in entry.error
        assert running.server.registry.entries["marian"].state.value == "ready"
        with dragoman.Client(running.address, timeout=60) as c:
            with pytest.raises(dragoman.DragomanError) as caught:
                c.translate("Le budget.", "en", source="fr")
        assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert not cache.exists() or not any(cache.iterdir())


def test_sliding_window_model_falls_back_to_static_batching(tmp_path):
    """Continuous batching runs full-attention layers only; such a model still serves, statically."""
    from model_factory import build_tiny_qwen2_chat

    path = build_tiny_qwen2_chat(tmp_path / "sliding")
    config_file = path / "config.json"
    config = json.loads(config_file.read_text())
    layers = config["num_hidden_layers"]
    config.update(
        use_sliding_window=True,
        sliding_window=64,
        max_window_layers=0,
        layer_types=["sliding_attention"] * layers,
    )
    config_file.write_text(json.dumps(config))
    model = {"name": "sliding", "task": "translation", "source": str(path), "languages": ["fr-en"]}
    with BackgroundServer(make_config([model])) as running:
        entry = running.server.registry.entries["sliding"]
        assert entry.state.value == "ready", entry.error
        assert entry.batcher.static is not None and entry.batcher.continuous is None
        with dragoman.Client(running.address, timeout=60) as c:
            [result] = c.translate("Le budget.", "en", source="fr")
        assert result.route[0].model == "sliding"


def test_a_full_queue_refuses_with_resource_exhausted(chat_models):
    """max_queue_size units at once per instruction model; the next caller is told to retry."""
    model = {
        "name": "qwen",
        "task": "translation",
        "source": str(chat_models["qwen"]),
        "languages": ["fr-en"],
        "max_new_tokens": 1000,
    }
    text = " ".join(f"Le budget {i} de l'État a été approuvé." for i in range(6))

    async def main(address):
        async with dragoman.AsyncClient(address, timeout=60, retries=0) as c:
            calls = [c.translate(f"{i}. {text}", "en", source="fr") for i in range(4)]
            return await asyncio.gather(*calls, return_exceptions=True)

    with BackgroundServer(make_config([model], max_queue_size=2)) as running:
        outcomes = asyncio.run(main(running.address))
        batcher = running.server.registry.entries["qwen"].batcher
        assert _wait_until(lambda: batcher.continuous.active == 0 and batcher._pending == 0)
    refused = [o for o in outcomes if isinstance(o, dragoman.DragomanError)]
    assert refused, "no call was refused"
    assert {e.code for e in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
    assert {e.reason for e in refused} == {"QUEUE_FULL"}
    assert any(not isinstance(o, Exception) for o in outcomes)


# -- cancellation ---------------------------------------------------------------------------------


def _wait_until(predicate, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_cancelled_stream_leaves_the_batch_and_frees_its_cache(instruct_server):
    """qwen (random) generates up to 200 tokens; the caller goes after the first pieces."""
    batcher = instruct_server.server.registry.entries["qwen"].batcher.continuous
    cancelled_before = batcher.stats.cancelled
    channel = grpc.insecure_channel(instruct_server.address)
    stub = pb_grpc.DragomanStub(channel)
    text = "Le gouvernement a approuvé le budget de l'État. " * 2
    call = stub.TranslateStream(
        pb.TranslateRequest(texts=[text], source_language="fr", target_language="en")
    )
    assert _wait_until(lambda: batcher.active == 1, 10), "the request never joined the batch"
    call.cancel()
    assert _wait_until(lambda: batcher.active == 0 and batcher.stats.kv_bytes == 0, 10)
    assert batcher.stats.cancelled > cancelled_before
    channel.close()


def test_timed_out_request_frees_its_slot(instruct_server):
    """Three units of ~230 tokens, each of which may generate ~360 (random qwen does), cannot
    finish in 0.3 s: at the deadline every unit leaves the batch (or its queue) and frees its
    cache, and the model serves the next request."""
    batcher = instruct_server.server.registry.entries["qwen"].batcher.continuous
    text = " ".join(f"Le budget {i} de l'État a été approuvé." for i in range(20))
    with dragoman.Client(instruct_server.address) as c:
        with pytest.raises(dragoman.DragomanError) as caught:
            c.translate(text, "en", source="fr", timeout=0.3)
        assert caught.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert _wait_until(lambda: batcher.active == 0 and batcher.stats.kv_bytes == 0, 10)
        assert batcher.queue_depth == 0
        [after] = c.translate("Le budget.", "en", source="fr", timeout=60)
        assert after.route[0].model == "qwen"


def test_summary_stream_cancelled_by_the_client_frees_the_slot(instruct_server):
    batcher = instruct_server.server.registry.entries["llama"].batcher.continuous
    with dragoman.Client(instruct_server.address, timeout=60) as c:
        stream = c.summarize_stream("Le gouvernement a approuvé le budget.", source="fr")
        next(stream)
        stream.cancel()
    assert _wait_until(lambda: batcher.active == 0 and batcher.stats.kv_bytes == 0, 10)
