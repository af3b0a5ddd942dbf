"""Summarisation, cross-lingual when asked, of texts of any length (chunked, in bounded rounds)."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import re
from collections.abc import Callable

from .domain import SummarizeInput, SummaryResult
from .engines import GenerationParams
from .errors import InvalidArgument
from .generation import check_queue_room, check_window
from .languages import base, fallbacks
from .markup import text_content
from .registry import ModelRegistry
from .router import Router
from .segmentation import pack_segments, split_sentences
from .settings import ServerSettings
from .source_language import SourceResolver
from .translation import TokenCounts, Translator

__all__ = ["Summarizer"]

# Summary words -> generated tokens (subword tokenizers average ~1.3-1.5 tokens a word).
TOKENS_PER_WORD = 1.6


class Summarizer:
    """Summarises SummarizeInputs; one per data plane."""

    def __init__(
        self,
        limits: ServerSettings,
        registry: ModelRegistry,
        router: Router,
        sources: SourceResolver,
        translator: Translator,
    ):
        self.limits = limits
        self.registry = registry
        self.router = router
        self.sources = sources
        self.translator = translator

    async def summarize(
        self, request: SummarizeInput, on_delta: Callable[[str], None] | None = None
    ) -> SummaryResult:
        """Summarise, cross-lingually when asked. `on_delta`: called with each piece of the summary
        as an instruction model generates it (its raw output: the result's `summary` is the one
        to keep); other paths produce the summary at once and do not call it.

        An instruction model configured for both languages summarises straight into the target
        language (path "summarize-cross-lingual", no translation pass): it is asked to, in its
        prompt, which a seq2seq summariser cannot be.

        Cross-lingual paths: summarize-then-translate when a summariser for the source language
        and a translation route exist (cheaper: only the summary is translated), else
        translate-then-summarize. A summariser configured for both languages is NOT used to go
        from one to the other directly: being listed for "en" and "pt" says it summarises each,
        not that it writes a Portuguese summary of an English text (mBART/mT5 summarisers
        fine-tuned monolingually drift back to the input language), so the path is always explicit.
        HTML (mime_type text/html): the text content of the page is summarised.
        """
        if request.mime_type == "text/html":
            text = await asyncio.to_thread(text_content, request.text)
            if not text.strip():
                raise InvalidArgument(
                    "text: the HTML has no text to summarise", reason="TEXT_EMPTY", field="text"
                )
            request = dataclasses.replace(request, text=text, mime_type="text/plain")
        source = await self.sources.resolve(request.source, request.text, "text", None)
        target = request.target or source.language
        counts = TokenCounts()
        models: list[str] = []
        rounds = 0

        async def summarise(text: str, language: str, model: str) -> str:
            nonlocal rounds
            summary, rounds = await self._summarize_text(
                text, language, model, request.max_words, counts
            )
            models.append(model)
            return summary

        async def translate(text: str, source_language: str) -> str:
            hops = self.router.route(source_language, target)
            for hop in hops:
                text = await self.translator.translate_plain(text, hop, counts, "text")
                models.append(hop.model)
            return text

        direct = self._instruction_summarizer(source.language, target, request.model)
        if direct is not None:
            summary, rounds = await self._summarize_instruct(
                request, source.language, target, direct, counts, on_delta
            )
            models.append(direct)
            path = (
                "summarize" if base(source.language) == base(target) else "summarize-cross-lingual"
            )
        elif base(source.language) == base(target):
            model = self.router.summarizer(source.language, request.model)
            if model is None:
                raise self._no_summarizer(source.language)
            summary, path = await summarise(request.text, source.language, model), "summarize"
        else:
            at_source = self.router.summarizer(source.language, request.model)
            if request.model and source.language not in self._languages(request.model):
                at_source = None
            at_target = self.router.summarizer(target, request.model)
            if request.model and target not in self._languages(request.model):
                at_target = None
            if at_source and self.router.has_route(source.language, target):
                # Cheaper: translate the short summary rather than the whole article.
                summary = await summarise(request.text, source.language, at_source)
                summary, path = (
                    await translate(summary, source.language),
                    "summarize-then-translate",
                )
            elif at_target:
                translated = await translate(request.text, source.language)
                summary, path = (
                    await summarise(translated, target, at_target),
                    "translate-then-summarize",
                )
            elif at_source:
                self.router.route(source.language, target)  # raises: no route
                raise AssertionError("unreachable")
            else:
                raise self._no_summarizer(f"{source.language} or {target}")
        shape = _shape_instruct if direct is not None else _shape
        summary = await asyncio.to_thread(shape, summary, request.max_words, request.format, target)
        return SummaryResult(
            summary=summary,
            source_language=source.language,
            source_language_detected=source.detected,
            detection_confidence=source.confidence,
            target_language=target,
            models=models,
            input_tokens=counts.input_tokens,
            output_tokens=counts.output_tokens,
            path=path,
            rounds=rounds,
        )

    def _instruction_summarizer(self, source: str, target: str, model: str | None) -> str | None:
        """The instruction model that summarises `source` into `target` in one step: the one
        asked for, or routed to (same language), else the first configured for both languages;
        None when there is none (the seq2seq paths apply)."""
        if base(source) == base(target):
            chosen = self.router.summarizer(source, model)
            names = [chosen] if chosen else []
        elif model:
            names = [model]
        else:
            names = [n for n, c in self.router.models.items() if c.task == "summarization"]
        for name in names:
            config = self.router.model(name)
            if config.task != "summarization":
                continue
            served = set(config.languages)
            if not (set(fallbacks(source)) & served and set(fallbacks(target)) & served):
                continue
            # Asked for by name: its state is the caller's answer (loading, failed); otherwise
            # only a ready model is known to be an instruction model.
            entry = self.registry.get(name) if model else self.registry.entries[name]
            if entry.engine is not None and entry.engine.instruct:
                return name
        return None

    async def _summarize_instruct(
        self,
        request: SummarizeInput,
        source: str,
        target: str,
        model: str,
        counts: TokenCounts,
        on_delta: Callable[[str], None] | None,
    ) -> tuple[str, int]:
        """An instruction model's summary, in `target`, of a text of any length: in one step when
        it fits the model's real window beside the prompt and the summary; else chunk by chunk
        (each chunk summarised in `target`), then the summaries again, in bounded rounds."""
        entry = self.registry.get(model)
        engine = entry.engine
        budget = min(engine.max_new_tokens, math.ceil(request.max_words * TOKENS_PER_WORD) + 16)
        # The real window (32k for Qwen2.5), unless the KV-cache budget holds less.
        context = entry.batcher.context_tokens

        def input_room(budget: int) -> int:
            return min(engine.input_room(budget), context - engine.prompt_overhead - budget)

        room = input_room(budget)
        if room < 16:
            budget = max(16, min(engine.summary_room, context // 4))
            room = input_room(budget)
        lang = base(source)
        params = GenerationParams(
            source,
            target,
            max_new_tokens=budget,
            words=request.max_words,
            summary_format=request.format,
        )
        current, previous_tokens = request.text, None
        for round_number in range(1, self.limits.max_summary_rounds + 1):

            def chunk(text: str, language: str = lang) -> tuple[list[str], list[int]]:
                chunks = pack_segments(text, lambda s: engine.count_tokens([s])[0], room, language)
                return chunks, engine.count_tokens(chunks)

            chunks, tokens = await asyncio.to_thread(chunk, current)
            if not chunks:  # the last round's summaries were empty: nothing more to summarise
                return current.strip(), round_number - 1
            check_window(entry, [min(t, room) for t in tokens], "text")
            check_queue_room(entry, len(chunks), "text")
            if len(chunks) == 1:
                if on_delta is not None:
                    result = await entry.batcher.stream(chunks[0], params, on_delta)
                else:
                    [result] = await entry.batcher.generate(chunks, tokens, params)
                counts.input_tokens += result.input_tokens
                counts.output_tokens += result.output_tokens
                return result.text, round_number
            total = sum(tokens)
            if previous_tokens is not None and total >= previous_tokens:
                break
            per_chunk = max(16, min(budget, (room * 3 // 4) // len(chunks)))
            words = max(8, math.floor(per_chunk / TOKENS_PER_WORD))
            results = await entry.batcher.generate(
                chunks,
                tokens,
                dataclasses.replace(params, max_new_tokens=per_chunk, words=words),
            )
            counts.input_tokens += sum(r.input_tokens for r in results)
            counts.output_tokens += sum(r.output_tokens for r in results)
            current, previous_tokens = "\n\n".join(r.text for r in results), total
            # The summaries are in the target language now: summarise them as such.
            lang = base(target)
            params = dataclasses.replace(params, source_language=target)
        return current, self.limits.max_summary_rounds

    def _languages(self, model: str) -> tuple[str, ...]:
        return self.router.model(model).languages

    def _no_summarizer(self, language: str) -> InvalidArgument:
        return InvalidArgument(
            f"no summarisation model for {language}; summarisation languages: "
            + (", ".join(self.router.summary_languages()) or "none")
        )

    async def _summarize_text(
        self, text: str, language: str, model: str, max_words: int, counts: TokenCounts
    ) -> tuple[str, int]:
        """Summarise; long inputs are summarised chunk by chunk, then the summaries again.

        Bounded: at most `max_summary_rounds` rounds, and it stops as soon as a round does not
        make the text shorter, returning the joined chunk summaries.
        """
        entry = self.registry.get(model)
        engine = entry.engine
        budget = min(engine.max_new_tokens, math.ceil(max_words * TOKENS_PER_WORD) + 8)
        window = engine.max_input_tokens
        lang = base(language)
        params = GenerationParams(language, language, max_new_tokens=budget)
        current, previous_tokens = text, None

        def chunk(current: str) -> tuple[list[str], list[int]]:
            chunks = pack_segments(current, lambda s: engine.count_tokens([s])[0], window, lang)
            return chunks, engine.count_tokens(chunks)

        for round_number in range(1, self.limits.max_summary_rounds + 1):
            chunks, tokens = await asyncio.to_thread(chunk, current)
            check_window(entry, tokens, "text")
            check_queue_room(entry, len(chunks), "text")
            if len(chunks) == 1:
                [result] = await entry.batcher.generate(chunks, tokens, params)
                counts.input_tokens += result.input_tokens
                counts.output_tokens += result.output_tokens
                return result.text, round_number
            total = sum(tokens)
            if previous_tokens is not None and total >= previous_tokens:
                break
            per_chunk = max(16, min(engine.max_new_tokens, (window * 3 // 4) // len(chunks)))
            results = await entry.batcher.generate(
                chunks, tokens, GenerationParams(language, language, max_new_tokens=per_chunk)
            )
            counts.input_tokens += sum(r.input_tokens for r in results)
            counts.output_tokens += sum(r.output_tokens for r in results)
            current, previous_tokens = " ".join(r.text for r in results), total
        return current, self.limits.max_summary_rounds


def _shape(summary: str, max_words: int, format: str, language: str) -> str:
    """At most max_words words; as bullets (one a sentence) when asked."""
    summary = _limit_words(summary, max_words)
    if format == "bullets":
        summary = "\n".join(f"- {s}" for s in split_sentences(summary, base(language)))
    return summary


_BULLET = re.compile(r"^\s*(?:[-*•–]|\d+[.)])\s+")


def _shape_instruct(summary: str, max_words: int, format: str, language: str) -> str:
    """An instruction model's summary, at most max_words words: its own bullet lines (any
    marker) become "- " lines; a paragraph stays as written."""
    lines = [line for line in summary.splitlines() if line.strip()]
    if format == "bullets" and lines and all(_BULLET.match(line) for line in lines):
        kept, words = [], 0
        for line in lines:
            text = _BULLET.sub("", line).strip()
            n = len(text.split())
            if words + n > max_words:
                if not kept:
                    kept.append("- " + _limit_words(text, max_words))
                break
            kept.append("- " + text)
            words += n
        return "\n".join(kept)
    return _shape(
        " ".join(summary.split()) if format == "bullets" else summary, max_words, format, language
    )


def _limit_words(text: str, max_words: int) -> str:
    """At most max_words words, cut at a sentence end when one is near."""
    words = text.split()
    if len(words) <= max_words:
        return text.strip()
    cut = " ".join(words[:max_words])
    end = max(cut.rfind(". "), cut.rfind("! "), cut.rfind("? "), cut.rfind("."))
    if end >= len(cut) // 2:
        return cut[: end + 1]
    return cut
