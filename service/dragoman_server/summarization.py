"""Summarisation, cross-lingual when asked, of texts of any length (chunked, in bounded rounds)."""

from __future__ import annotations

import asyncio
import dataclasses
import math

from .domain import SummarizeInput, SummaryResult
from .engines import GenerationParams
from .errors import InvalidArgument
from .generation import check_queue_room, check_window
from .languages import base
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

    async def summarize(self, request: SummarizeInput) -> SummaryResult:
        """Summarise, cross-lingually when asked.

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

        if base(source.language) == base(target):
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
        summary = await asyncio.to_thread(
            _shape, summary, request.max_words, request.format, target
        )
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
