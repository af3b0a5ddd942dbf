"""The data plane: translation, streaming, summarisation and detection over the loaded models.

Transport-free: takes validated domain inputs, returns domain results, raises domain errors.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from . import detection
from .cache import TranslationCache
from .domain import (
    ParagraphResult,
    SummarizeInput,
    SummaryResult,
    TranslateInput,
    TranslationResult,
)
from .engines import Generated, GenerationParams
from .errors import InvalidArgument
from .glossary import Glossary, Protected, merge
from .languages import base
from .markup import HtmlDocument, parse_html, text_content
from .quality import check_output
from .registry import ModelEntry, ModelRegistry
from .router import Hop, Router
from .segmentation import Document, pack_segments, split_document, split_sentences
from .settings import Config

log = logging.getLogger(__name__)

# Detection reads the start of a text: enough for a confident answer, bounded cost.
DETECTION_CHARS = 2000
# Summary words -> generated tokens (subword tokenizers average ~1.3-1.5 tokens a word).
TOKENS_PER_WORD = 1.6
# Translation cache entries when the `cache_size` setting is absent.
DEFAULT_CACHE_SIZE = 10_000


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
        self.config_by_name = {m.name: m for m in config.models}
        self._model_glossaries = {
            m.name: Glossary(m.glossary.items()) for m in config.models if m.glossary
        }
        # Segment translations already made; `cache.stats()` for logs and metrics.
        self.cache = TranslationCache(getattr(config.server, "cache_size", DEFAULT_CACHE_SIZE))
        self._inflight: dict[tuple, _Shared] = {}
        # Degenerate outputs flagged and repaired by quality.check_output.
        self.flagged = 0

    # -- language -------------------------------------------------------------------------------

    async def detect(self, text: str, max_results: int = 3) -> list[detection.LanguageScore]:
        """Candidates among the configured languages (what Translate would detect)."""
        served = detection.configured_languages(self.config.models)
        return await asyncio.to_thread(
            detection.detect, text[:DETECTION_CHARS], max_results, served
        )

    async def _source(
        self, given: str | None, text: str, field: str, target: str | None
    ) -> _Source:
        if given:
            return _Source(given, False, 0.0)
        # Candidates: the configured languages and the target (see detection.py for why).
        candidates = detection.configured_languages(self.config.models) | {target or ""} - {""}
        found = await asyncio.to_thread(detection.identify, text[:DETECTION_CHARS], candidates)
        best = found.foreign or found.best
        if best is None or (found.foreign is None and best.confidence <= detection.CONFIDENT):
            guess = f" (best guess {best.language!r} at {best.confidence:.2f})" if best else ""
            raise InvalidArgument(
                f"{field}: the language could not be detected reliably{guess}; set source_language",
                reason="LANGUAGE_NOT_DETECTED",
                field=field,
            )
        detected = _Source(best.language, True, best.confidence)
        if found.foreign is None and (
            target is None
            or base(best.language) == base(target)
            or self.router.has_route(best.language, target)
        ):
            return detected
        served = ", ".join(sorted(candidates))
        routes = f"has no route to {target!r}" if target else f"is not served (served: {served})"
        raise InvalidArgument(
            f"{field}: detected language {best.language!r} (confidence {best.confidence:.2f}) "
            f"{routes}; supported pairs: {', '.join(self.router.supported_pairs())}",
            reason="LANGUAGE_NOT_SERVED",
            field=field,
        )

    # -- translation ----------------------------------------------------------------------------
    #
    # A text becomes "units" (plain: the text itself; HTML: its blocks, inline tags as
    # placeholders, see markup.py), each with its glossary terms swapped for placeholders (see
    # glossary.py). Units are segmented (segmentation.split_document), the segments looked up in
    # the translation cache, the misses submitted to the model's batcher (all units of a text at
    # once, so they batch together), checked (quality.check_output), and rendered back exactly.

    async def _prepare(
        self, request: TranslateInput, index: int, text: str
    ) -> tuple[_Source, list[Hop]]:
        field = f"texts[{index}]"
        source = await self._source(request.source, text, field, request.target)
        if base(source.language) == base(request.target) and not request.model:
            return source, []
        return source, self.router.route(source.language, request.target, request.model)

    async def _segment_many(
        self, entry: ModelEntry, texts: Sequence[str], language: str
    ) -> tuple[list[Document], list[int]]:
        engine = entry.engine

        def work() -> tuple[list[Document], list[int]]:
            docs = [
                split_document(
                    t,
                    lambda s: engine.count_tokens([s])[0],
                    engine.max_input_tokens,
                    base(language),
                )
                for t in texts
            ]
            return docs, engine.count_tokens([s for d in docs for s in d.segments()])

        return await asyncio.to_thread(work)

    async def _segment(
        self, entry: ModelEntry, text: str, language: str
    ) -> tuple[Document, list[int]]:
        docs, tokens = await self._segment_many(entry, [text], language)
        return docs[0], tokens

    def _submit(
        self,
        entry: ModelEntry,
        segments: Sequence[str],
        tokens: Sequence[int],
        params: GenerationParams,
    ) -> list[asyncio.Future]:
        """One future per segment: cache hits at once; a segment already being generated (in this
        call or a concurrent one) is shared, not generated again; only the rest is submitted."""
        loop = asyncio.get_running_loop()
        out: list[asyncio.Future | None] = [None] * len(segments)
        new: dict[tuple, list[int]] = {}
        for i, segment in enumerate(segments):
            key = (entry.config.name, params, segment)
            if key in new:
                new[key].append(i)
                continue
            shared = self._inflight.get(key)
            if shared is not None:
                out[i] = shared.consumer(loop)
                continue
            cached = self.cache.get(key)
            if cached is not None:
                future = loop.create_future()
                future.set_result(Generated(cached, 0, 0))
                out[i] = future
            else:
                new[key] = [i]
        if new:
            keys = list(new)
            firsts = [new[k][0] for k in keys]
            futures = entry.batcher.submit(
                [segments[i] for i in firsts], [tokens[i] for i in firsts], params
            )
            for key, future in zip(keys, futures, strict=True):
                shared = self._inflight[key] = _Shared(loop.create_task(self._finish(future, key)))
                for i in new[key]:
                    out[i] = shared.consumer(loop)
        return out  # type: ignore[return-value]

    async def _finish(self, future: asyncio.Future, key: tuple) -> Generated:
        try:
            result: Generated = await future
        finally:
            self._inflight.pop(key, None)
        source = key[2]
        text, reason = check_output(source, result.text)
        if reason:
            self.flagged += 1
            log.warning(
                "model %s: degenerate output flagged (%s) and repaired: %d chars in, %d out",
                key[0],
                reason,
                len(source),
                len(result.text),
            )
            return Generated(text, result.input_tokens, result.output_tokens)
        self.cache.put(key, text)
        return result

    async def _translate_plain(self, text: str, hop: Hop, counts: _Counts) -> str:
        """One hop over a whole text: segment, batch, render (the hop model's glossary applied)."""
        entry = self.registry.get(hop.model)
        glossary = self._model_glossaries.get(hop.model)
        protected = glossary.protect(text, first_id=_HOP_IDS) if glossary else None
        if protected is not None:
            text = protected.text
        doc, tokens = await self._segment(entry, text, hop.source)
        futures = self._submit(
            entry, doc.segments(), tokens, GenerationParams(hop.source, hop.target)
        )
        try:
            results = await asyncio.gather(*futures)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        counts.input_tokens += sum(r.input_tokens for r in results)
        counts.output_tokens += sum(r.output_tokens for r in results)
        rendered = doc.render([r.text for r in results])
        if protected is not None:
            rendered, _ = protected.restore(rendered)
        return rendered

    async def _unit_tasks(
        self, units: Sequence[_Unit], hops: Sequence[Hop], counts: _Counts
    ) -> list[list[asyncio.Task]]:
        """Per unit, one task per paragraph answering its translation with its separator.

        All segments of the first hop are queued at once (they batch together); later hops run
        per paragraph as soon as that paragraph's first hop is done.
        """
        loop = asyncio.get_running_loop()
        if not hops:
            return [[loop.create_task(_value(u.finish(u.protected.text)))] for u in units]
        first = hops[0]
        entry = self.registry.get(first.model)
        docs, tokens = await self._segment_many(
            entry, [u.protected.text for u in units], first.source
        )
        futures = self._submit(
            entry,
            [s for d in docs for s in d.segments()],
            tokens,
            GenerationParams(first.source, first.target),
        )

        async def paragraph(unit: _Unit, doc: Document, index: int, mine: list) -> str:
            para = doc.paragraphs[index]
            results = await asyncio.gather(*mine)
            counts.input_tokens += sum(r.input_tokens for r in results)
            counts.output_tokens += sum(r.output_tokens for r in results)
            outputs = iter(r.text for r in results)
            content = "".join(next(outputs) if p.translate else p.text for p in para.pieces)
            content = unit.after_first(content)
            for hop in hops[1:]:
                content = await self._translate_plain(content, hop, counts)
            content = unit.finish(content)
            return (doc.leading if index == 0 else "") + content + para.separator

        all_tasks: list[list[asyncio.Task]] = []
        start = 0
        for unit, doc in zip(units, docs, strict=True):
            tasks = []
            for index, count in enumerate(doc.paragraph_segment_counts()):
                mine = futures[start : start + count]
                tasks.append(loop.create_task(paragraph(unit, doc, index, mine)))
                start += count
            if not tasks:  # nothing but whitespace: kept as it is
                tasks.append(loop.create_task(_value(doc.leading)))
            all_tasks.append(tasks)
        return all_tasks

    def _job(self, request: TranslateInput, index: int, hops: Sequence[Hop]) -> _Job:
        text = request.texts[index]
        html = parse_html(text) if request.mime_type == "text/html" else None
        texts = html.texts() if html is not None else [text]
        model_terms = self.config_by_name[hops[0].model].glossary if hops else {}
        glossary = Glossary(merge(model_terms, request.glossary))
        # With a pivot, the request's terms stay protected through every hop; the first model's
        # own terms are restored after its hop (the next model then translates them on).
        late = {s for s, _ in request.glossary} if len(hops) > 1 else None
        job = _Job(html, [])
        for t in texts:
            job.units.append(_Unit(glossary.protect(t) if glossary else Protected(t), job, late))
        return job

    async def _start(
        self, request: TranslateInput
    ) -> tuple[list[tuple[_Source, list[Hop]]], list[_Job], list[_Counts], list]:
        # Detection reads the text content of HTML, not its markup (not needed when given).
        detect_html = request.mime_type == "text/html" and not request.source
        prepared = await asyncio.gather(
            *(
                self._prepare(request, i, (text_content(t) or t) if detect_html else t)
                for i, t in enumerate(request.texts)
            )
        )
        jobs = [self._job(request, i, hops) for i, (_, hops) in enumerate(prepared)]
        return prepared, jobs, [_Counts() for _ in request.texts], []

    async def translate(self, request: TranslateInput) -> list[TranslationResult]:
        """Translate every text; the segments of all texts share batches."""
        prepared, jobs, counts, all_tasks = await self._start(request)
        try:
            for (_, hops), job, c in zip(prepared, jobs, counts, strict=True):
                all_tasks.append(await self._unit_tasks(job.units, hops, c))
            texts = []
            for job, unit_tasks in zip(jobs, all_tasks, strict=True):
                outputs = ["".join(await asyncio.gather(*tasks)) for tasks in unit_tasks]
                texts.append(job.html.render(outputs) if job.html is not None else outputs[0])
        finally:
            _cancel([t for unit_tasks in all_tasks for t in unit_tasks])
        return [
            TranslationResult(
                text=text,
                source_language=source.language,
                source_language_detected=source.detected,
                detection_confidence=source.confidence,
                route=hops,
                applied_glossary=job.applied_in_order(),
                input_tokens=c.input_tokens,
                output_tokens=c.output_tokens,
            )
            for text, (source, hops), job, c in zip(texts, prepared, jobs, counts, strict=True)
        ]

    async def translate_stream(self, request: TranslateInput) -> AsyncIterator[ParagraphResult]:
        """Translate every text, yielding paragraphs (HTML: blocks) in order as soon as ready."""
        prepared, jobs, counts, all_tasks = await self._start(request)
        try:
            for (_, hops), job, c in zip(prepared, jobs, counts, strict=True):
                all_tasks.append(await self._unit_tasks(job.units, hops, c))
            for i, (job, unit_tasks) in enumerate(zip(jobs, all_tasks, strict=True)):
                source, hops = prepared[i]
                chunks = _chunks(job, unit_tasks)
                for j, chunk in enumerate(chunks):
                    yield ParagraphResult(
                        text_index=i,
                        paragraph_index=j,
                        text=await chunk,
                        last=j == len(chunks) - 1,
                        source_language=source.language,
                        source_language_detected=source.detected,
                        detection_confidence=source.confidence,
                        route=hops,
                    )
        finally:
            _cancel([t for unit_tasks in all_tasks for t in unit_tasks])

    # -- summarisation --------------------------------------------------------------------------

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
            text = text_content(request.text)
            if not text.strip():
                raise InvalidArgument("text: the HTML has no text to summarise")
            request = dataclasses.replace(request, text=text, mime_type="text/plain")
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


# Placeholder numbers for a later hop's own glossary (clear of the request's, still in the text).
_HOP_IDS = 10_000


class _Shared:
    """A segment being generated for several callers; cancelled when every caller has gone."""

    def __init__(self, task: asyncio.Task):
        self.task = task
        self.users = 0

    def consumer(self, loop: asyncio.AbstractEventLoop) -> asyncio.Future:
        consumer = loop.create_future()
        self.users += 1

        def answer(task: asyncio.Task) -> None:
            if consumer.done():
                return
            if task.cancelled():
                consumer.cancel()
            elif task.exception() is not None:
                consumer.set_exception(task.exception())
            else:
                consumer.set_result(task.result())

        def gone(future: asyncio.Future) -> None:
            if future.cancelled():
                self.users -= 1
                if self.users == 0:
                    self.task.cancel()

        self.task.add_done_callback(answer)
        consumer.add_done_callback(gone)
        return consumer


class _Job:
    """One text of a request: its units, its HTML skeleton (if any), the glossary entries applied."""

    def __init__(self, html: HtmlDocument | None, units: list[_Unit]):
        self.html = html
        self.units = units
        self.applied: list[tuple[str, str]] = []

    def note(self, applied: list[tuple[str, str]]) -> None:
        for entry in applied:
            if entry not in self.applied:
                self.applied.append(entry)

    def applied_in_order(self) -> list[tuple[str, str]]:
        """Applied entries in order of first occurrence in the text (paragraphs finish in any
        order)."""
        rank: dict[tuple[str, str], int] = {}
        for unit in self.units:
            for entry in unit.protected.entries.values():  # placeholder order = text order
                rank.setdefault(entry, len(rank))
        return sorted(self.applied, key=lambda e: rank.get(e, len(rank)))


class _Unit:
    """One unit of a text (the plain text, or an HTML block) with its glossary placeholders."""

    def __init__(self, protected: Protected, job: _Job, late: set[str] | None):
        self.protected = protected
        self.job = job
        # Placeholders restored right after the first hop (None: all of them at the end).
        self.early = (
            None
            if late is None
            else {t for t, (source, _) in protected.entries.items() if source not in late}
        )

    def after_first(self, text: str) -> str:
        if not self.early:
            return text
        text, applied = self.protected.restore(text, only=self.early)
        self.job.note(applied)
        return text

    def finish(self, text: str) -> str:
        if not self.protected.entries:
            return text
        text, applied = self.protected.restore(text)
        self.job.note(applied)
        return text


def _chunks(job: _Job, unit_tasks: list[list[asyncio.Task]]) -> list:
    """Awaitables of a text's streamed pieces: plain, its paragraphs; HTML, its blocks with the
    markup around them (the first carries the skeleton before it, the last the one after)."""
    if job.html is None:
        return unit_tasks[0]
    html = job.html
    if not html.blocks:
        return [_value(html.skeleton[0])]

    async def block(i: int) -> str:
        text = "".join(await asyncio.gather(*unit_tasks[i]))
        out = html.blocks[i].render(text) + html.skeleton[i + 1]
        return (html.skeleton[0] + out) if i == 0 else out

    return [block(i) for i in range(len(html.blocks))]
