"""The data plane: translation, streaming, summarisation and detection over the loaded models.

Transport-free: takes validated domain inputs, returns domain results, raises domain errors.
"""

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from . import detection
from .domain import (
    ParagraphResult,
    SummarizeInput,
    SummaryResult,
    TranslateInput,
    TranslationResult,
)
from .engines import GenerationParams
from .errors import InvalidArgument
from .languages import base
from .registry import ModelEntry, ModelRegistry
from .router import Hop, Router
from .segmentation import Document, pack_segments, split_document, split_sentences
from .settings import Config

log = logging.getLogger(__name__)

# Detection reads the start of a text: enough for a confident answer, bounded cost.
DETECTION_CHARS = 2000
# Summary words -> generated tokens (subword tokenizers average ~1.3-1.5 tokens a word).
TOKENS_PER_WORD = 1.6


@dataclass
class _Counts:
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True)
class _Source:
    language: str
    detected: bool
    confidence: float


class DataPlane:
    """Serves the domain operations; one per server."""

    def __init__(self, config: Config, registry: ModelRegistry):
        self.config = config
        self.limits = config.server
        self.registry = registry
        self.router = Router(config.models, config.server.pivot_language)

    # -- language -------------------------------------------------------------------------------

    async def detect(self, text: str, max_results: int = 3) -> list[detection.LanguageScore]:
        return await asyncio.to_thread(detection.detect, text[:DETECTION_CHARS], max_results)

    async def _source(
        self, given: str | None, text: str, field: str, target: str | None
    ) -> _Source:
        if given:
            return _Source(given, False, 0.0)
        best = (await self.detect(text, 1))[0]
        detected = _Source(best.language, True, best.confidence)
        if target is None or base(best.language) == base(target):
            return detected
        if self.router.has_route(best.language, target):
            return detected
        if best.confidence < detection.CONFIDENT:
            raise InvalidArgument(
                f"{field}: the language could not be detected reliably (best guess "
                f"{best.language!r} at {best.confidence:.2f}); set source_language"
            )
        raise InvalidArgument(
            f"{field}: detected language {best.language!r} (confidence {best.confidence:.2f}) has no "
            f"route to {target!r}; supported pairs: {', '.join(self.router.supported_pairs())}"
        )

    # -- translation ----------------------------------------------------------------------------

    def _plain(self, request: TranslateInput) -> None:
        if request.mime_type != "text/plain":
            raise InvalidArgument(
                f"mime_type: {request.mime_type!r} is not supported by this server"
            )
        if request.glossary:
            raise InvalidArgument("glossary: glossaries are not supported by this server")

    async def _prepare(self, request: TranslateInput, index: int) -> tuple[_Source, list[Hop]]:
        field = f"texts[{index}]"
        source = await self._source(request.source, request.texts[index], field, request.target)
        if base(source.language) == base(request.target) and not request.model:
            return source, []
        return source, self.router.route(source.language, request.target, request.model)

    async def _segment(
        self, entry: ModelEntry, text: str, language: str
    ) -> tuple[Document, list[int]]:
        engine = entry.engine

        def work() -> tuple[Document, list[int]]:
            doc = split_document(
                text, lambda s: engine.count_tokens([s])[0], engine.max_input_tokens, base(language)
            )
            return doc, engine.count_tokens(doc.segments())

        return await asyncio.to_thread(work)

    async def _translate_plain(self, text: str, hop: Hop, counts: _Counts) -> str:
        """One hop over a whole text: segment, batch, render."""
        entry = self.registry.get(hop.model)
        doc, tokens = await self._segment(entry, text, hop.source)
        results = await entry.batcher.generate(
            doc.segments(), tokens, GenerationParams(hop.source, hop.target)
        )
        counts.input_tokens += sum(r.input_tokens for r in results)
        counts.output_tokens += sum(r.output_tokens for r in results)
        return doc.render([r.text for r in results])

    async def _paragraph_tasks(
        self, text: str, hops: Sequence[Hop], counts: _Counts
    ) -> list[asyncio.Task]:
        """One task per paragraph, each answering the paragraph's translation with its separator.

        All segments of the first hop are queued at once (they batch together); later hops run
        per paragraph as soon as that paragraph's first hop is done.
        """
        if not hops:
            return [asyncio.get_running_loop().create_task(_value(text))]
        first = hops[0]
        entry = self.registry.get(first.model)
        doc, tokens = await self._segment(entry, text, first.source)
        futures = entry.batcher.submit(
            doc.segments(), tokens, GenerationParams(first.source, first.target)
        )

        async def paragraph(index: int, start: int) -> str:
            para = doc.paragraphs[index]
            n = sum(1 for p in para.pieces if p.translate)
            results = await asyncio.gather(*futures[start : start + n])
            counts.input_tokens += sum(r.input_tokens for r in results)
            counts.output_tokens += sum(r.output_tokens for r in results)
            outputs = iter(r.text for r in results)
            content = "".join(next(outputs) if p.translate else p.text for p in para.pieces)
            for hop in hops[1:]:
                content = await self._translate_plain(content, hop, counts)
            return (doc.leading if index == 0 else "") + content + para.separator

        tasks, start = [], 0
        for index, count in enumerate(doc.paragraph_segment_counts()):
            tasks.append(asyncio.get_running_loop().create_task(paragraph(index, start)))
            start += count
        if not tasks:  # nothing but whitespace: kept as it is
            for f in futures:
                f.cancel()
            tasks.append(asyncio.get_running_loop().create_task(_value(doc.leading)))
        return tasks

    async def translate(self, request: TranslateInput) -> list[TranslationResult]:
        """Translate every text; the segments of all texts share batches."""
        self._plain(request)
        prepared = await asyncio.gather(
            *(self._prepare(request, i) for i in range(len(request.texts)))
        )
        counts = [_Counts() for _ in request.texts]
        all_tasks: list[list[asyncio.Task]] = []
        try:
            for i, (_, hops) in enumerate(prepared):
                all_tasks.append(await self._paragraph_tasks(request.texts[i], hops, counts[i]))
            texts = ["".join(await asyncio.gather(*tasks)) for tasks in all_tasks]
        finally:
            _cancel(all_tasks)
        return [
            TranslationResult(
                text=text,
                source_language=source.language,
                source_language_detected=source.detected,
                detection_confidence=source.confidence,
                route=hops,
                input_tokens=c.input_tokens,
                output_tokens=c.output_tokens,
            )
            for text, (source, hops), c in zip(texts, prepared, counts, strict=True)
        ]

    async def translate_stream(self, request: TranslateInput) -> AsyncIterator[ParagraphResult]:
        """Translate every text, yielding paragraphs in order as soon as each is ready."""
        self._plain(request)
        prepared = await asyncio.gather(
            *(self._prepare(request, i) for i in range(len(request.texts)))
        )
        all_tasks: list[list[asyncio.Task]] = []
        try:
            for i, (_, hops) in enumerate(prepared):
                all_tasks.append(await self._paragraph_tasks(request.texts[i], hops, _Counts()))
            for i, tasks in enumerate(all_tasks):
                source, hops = prepared[i]
                for j, task in enumerate(tasks):
                    yield ParagraphResult(
                        text_index=i,
                        paragraph_index=j,
                        text=await task,
                        last=j == len(tasks) - 1,
                        source_language=source.language,
                        source_language_detected=source.detected,
                        detection_confidence=source.confidence,
                        route=hops,
                    )
        finally:
            _cancel(all_tasks)

    # -- summarisation --------------------------------------------------------------------------

    async def summarize(self, request: SummarizeInput) -> SummaryResult:
        if request.mime_type != "text/plain":
            raise InvalidArgument(
                f"mime_type: {request.mime_type!r} is not supported by this server"
            )
        source = await self._source(request.source, request.text, "text", None)
        target = request.target or source.language
        counts = _Counts()
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
                text = await self._translate_plain(text, hop, counts)
                models.append(hop.model)
            return text

        if base(source.language) == base(target):
            model = self.router.summarizer(source.language, request.model)
            if model is None:
                raise self._no_summarizer(source.language)
            summary, path = await summarise(request.text, source.language, model), "summarize"
        else:
            at_source = self.router.summarizer(source.language, request.model)
            if request.model and source.language not in _languages(self.router, request.model):
                at_source = None
            at_target = self.router.summarizer(target, request.model)
            if request.model and target not in _languages(self.router, request.model):
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
        summary = _limit_words(summary, request.max_words)
        if request.format == "bullets":
            summary = "\n".join(f"- {s}" for s in split_sentences(summary, base(target)))
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

    def _no_summarizer(self, language: str) -> InvalidArgument:
        return InvalidArgument(
            f"no summarisation model for {language}; summarisation languages: "
            + (", ".join(self.router.summary_languages()) or "none")
        )

    async def _summarize_text(
        self, text: str, language: str, model: str, max_words: int, counts: _Counts
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
        for round_number in range(1, self.limits.max_summary_rounds + 1):
            chunks = await asyncio.to_thread(
                pack_segments, current, lambda s: engine.count_tokens([s])[0], window, lang
            )
            tokens = await asyncio.to_thread(engine.count_tokens, chunks)
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

    # -- models ---------------------------------------------------------------------------------

    def list_models(self) -> list[ModelEntry]:
        return list(self.registry.entries.values())


def _languages(router: Router, model: str) -> tuple[str, ...]:
    return router.model(model).languages


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


async def _value(text: str) -> str:
    return text


def _cancel(task_lists: list[list[asyncio.Task]]) -> None:
    for tasks in task_lists:
        for task in tasks:
            if not task.done():
                task.cancel()
