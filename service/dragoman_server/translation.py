"""Translation of whole texts (plain or HTML), unary or streamed paragraph by paragraph.

A text becomes a *job* of *units* (plain: the text itself; HTML: its blocks, inline tags as
placeholders, see markup.py), each with its glossary terms swapped for placeholders (see
glossary.py). Units are segmented (segmentation.split_document) for the first hop's model, the
segments generated (generation.py: cache, single-flight, batcher; all units of a text at once, so
they batch together), and rendered back exactly. Later hops of a pivot route run per paragraph as
soon as its first hop is done.

Everything CPU-bound (HTML parsing and rendering, glossary matching and restoring, segmentation,
rendering whole texts) runs on worker threads, never on the event loop: one request's big page or
big glossary must not stall every other call, health checks included.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from . import output_checks, tracing
from .batcher import await_or_abandon
from .domain import ParagraphResult, TranslateInput, TranslationResult
from .engines import Engine, GenerationParams
from .generation import SegmentGenerator, check_queue_room, check_window
from .glossary import Glossary, Protected, merge
from .languages import base
from .markup import HtmlDocument, parse_html, text_content
from .registry import ModelEntry, ModelRegistry
from .router import Hop, Router
from .segmentation import Document, split_document
from .settings import Config
from .source_language import Source, SourceResolver

__all__ = ["TokenCounts", "Translator", "segment_texts"]

T = TypeVar("T")

# Placeholder numbers for a later hop's own glossary (clear of the request's, still in the text).
_HOP_IDS = 10_000
# Segments (or paragraphs) queued between two yields to the event loop.
_LOOP_SLICE = 256
# Texts of one call resolved or prepared at once on the shared worker threads.
_PREPARING_AT_ONCE = 2


@dataclass
class TokenCounts:
    """Model tokens a call used, summed over its hops (and rounds)."""

    input_tokens: int = 0
    output_tokens: int = 0


def segment_texts(
    engine: Engine, texts: Sequence[str], language: str, *, sentences: bool = False
) -> tuple[list[Document], list[int]]:
    """Segment texts for the engine's window (call on a worker thread): the documents, and the
    token count of each of their segments in order. Instruction models get paragraph-sized
    segments unless `sentences`."""
    docs = [
        split_document(
            t,
            lambda s: engine.count_tokens([s])[0],
            engine.max_input_tokens,
            base(language),
            whole_paragraphs=engine.instruct and not sentences,  # translate with context
        )
        for t in texts
    ]
    return docs, engine.count_tokens([s for d in docs for s in d.segments()])


class Translator:
    """Translates TranslateInputs; one per data plane."""

    def __init__(
        self,
        config: Config,
        registry: ModelRegistry,
        router: Router,
        sources: SourceResolver,
        generator: SegmentGenerator,
    ):
        self.registry = registry
        self.router = router
        self.sources = sources
        self.generator = generator
        self.config_by_name = {m.name: m for m in config.models}
        self._model_glossaries = {
            m.name: Glossary(m.glossary.items()) for m in config.models if m.glossary
        }

    # -- whole calls ----------------------------------------------------------------------------

    async def translate(self, request: TranslateInput) -> list[TranslationResult]:
        """Translate every text; the segments of all texts share batches."""
        plan = await self._start(request)
        try:
            outputs = []
            for job in plan.jobs:
                # Queue wait and batch generation (on the batcher's thread) of the text's segments.
                with tracing.span("dragoman.generate", **{"dragoman.field": job.field}):
                    units = ["".join(await asyncio.gather(*tasks)) for tasks in job.tasks]
                with tracing.span("dragoman.render", **{"dragoman.field": job.field}):
                    outputs.append(await asyncio.to_thread(job.render, units))
        finally:
            plan.cancel()
        return [
            TranslationResult(
                text=text,
                source_language=job.source.language,
                source_language_detected=job.source.detected,
                detection_confidence=job.source.confidence,
                route=job.hops,
                applied_glossary=job.applied_in_order(),
                input_tokens=job.counts.input_tokens,
                output_tokens=job.counts.output_tokens,
                flags=job.all_flags(),
            )
            for text, job in zip(outputs, plan.jobs, strict=True)
        ]

    async def translate_stream(self, request: TranslateInput) -> AsyncIterator[ParagraphResult]:
        """Translate every text, yielding paragraphs (HTML: blocks) in order as soon as ready."""
        plan = await self._start(request)
        span = None
        try:
            for i, job in enumerate(plan.jobs):
                chunks = _chunks(job)
                # Not current (an async generator's context changes between yields): generation
                # and the rendering of each paragraph or block, from the first await to the last.
                span = tracing.start_span("dragoman.generate", **{"dragoman.field": job.field})
                for j, chunk in enumerate(chunks):
                    text = await chunk
                    if j == len(chunks) - 1:
                        tracing.end_span(span)
                        span = None
                    yield ParagraphResult(
                        text_index=i,
                        paragraph_index=j,
                        text=text,
                        last=j == len(chunks) - 1,
                        source_language=job.source.language,
                        source_language_detected=job.source.detected,
                        detection_confidence=job.source.confidence,
                        route=job.hops,
                        flags=job.chunk_flags(j),
                    )
        finally:
            tracing.end_span(span)  # a stream that ended early
            plan.cancel()

    async def translate_plain(
        self,
        text: str,
        hop: Hop,
        counts: TokenCounts,
        field: str,
        flags: list[output_checks.OutputFlag] | None = None,
    ) -> str:
        """One hop over a whole plain text: segment, generate, render (the hop model's glossary
        applied). `field` names the input in errors; the output checks' flags go to `flags`."""
        entry = self.registry.get(hop.model)
        glossary = self._model_glossaries.get(hop.model)

        def prepare() -> tuple[Protected | None, Document, list[int]]:
            protected = glossary.protect(text, first_id=_HOP_IDS) if glossary else None
            plain = protected.text if protected is not None else text
            [doc], tokens = segment_texts(entry.engine, [plain], hop.source)
            return protected, doc, tokens

        protected, doc, tokens = await asyncio.to_thread(prepare)
        futures = self.generator.submit(
            entry, doc.segments(), tokens, GenerationParams(hop.source, hop.target), field
        )
        results = await await_or_abandon(futures)
        counts.input_tokens += sum(r.input_tokens for r in results)
        counts.output_tokens += sum(r.output_tokens for r in results)
        if flags is not None:
            flags.extend(f for r in results for f in getattr(r, "flags", ()))

        def render() -> str:
            rendered = doc.render([r.text for r in results])
            if protected is not None:
                rendered, _ = protected.restore(rendered)
            return rendered

        return await asyncio.to_thread(render)

    # -- the steps ------------------------------------------------------------------------------

    async def _start(self, request: TranslateInput) -> _Plan:
        """Resolve, prepare and check every text (two at a time), then queue every first-hop
        segment (in slices: see _queue)."""
        plan = _Plan()
        texts = range(len(request.texts))
        routes = await _in_turn([functools.partial(self._route, request, i) for i in texts])
        entries = [self.registry.get(hops[0].model) if hops else None for _, hops in routes]
        plan.jobs = await _in_turn(
            [
                functools.partial(asyncio.to_thread, self._job, request, i, source, hops, entry)
                for i, ((source, hops), entry) in enumerate(zip(routes, entries, strict=True))
            ]
        )
        self._check(plan.jobs, entries)
        try:
            for job, entry in zip(plan.jobs, entries, strict=True):
                await self._queue(plan, job, entry)
        except BaseException:
            plan.cancel()
            raise
        return plan

    async def _route(self, request: TranslateInput, index: int) -> tuple[Source, list[Hop]]:
        text = request.texts[index]
        if request.mime_type == "text/html" and not request.source:
            # Detection reads the text content of HTML, not its markup (not needed when given).
            text = (await asyncio.to_thread(text_content, text)) or text
        source = await self.sources.resolve(request.source, text, f"texts[{index}]", request.target)
        if base(source.language) == base(request.target) and not request.model:
            return source, []
        return source, self.router.route(source.language, request.target, request.model)

    def _job(
        self,
        request: TranslateInput,
        index: int,
        source: Source,
        hops: list[Hop],
        entry: ModelEntry | None,
    ) -> _Job:
        """Parse, protect glossary terms and segment one text (on a worker thread)."""
        # asyncio.to_thread copies the context: this span is the call span's child.
        with tracing.span("dragoman.segment", **{"dragoman.field": f"texts[{index}]"}) as span:
            job = self._prepare(request, index, source, hops, entry)
            if span is not None:
                span.set_attribute("dragoman.segments", len(job.tokens))
            return job

    def _prepare(
        self,
        request: TranslateInput,
        index: int,
        source: Source,
        hops: list[Hop],
        entry: ModelEntry | None,
    ) -> _Job:
        text = request.texts[index]
        model_terms = self.config_by_name[hops[0].model].glossary if hops else {}
        glossary = Glossary(merge(model_terms, request.glossary))
        later_terms = [
            (s, t) for hop in hops[1:] for s, t in self.config_by_name[hop.model].glossary.items()
        ]
        html = None
        if request.mime_type == "text/html":
            # Inline-tag placeholders are spelt so that no glossary term or target can form one.
            reserved = [w for entry in (*glossary.entries.items(), *later_terms) for w in entry]
            html = parse_html(text, reserved=reserved)
        texts = html.texts() if html is not None else [text]
        # With a pivot, the request's terms stay protected through every hop; the first model's
        # own terms are restored after its hop (the next model then translates them on).
        late = {s for s, _ in request.glossary} if len(hops) > 1 else None
        # Placeholder prefixes also avoid the later hops' glossary targets (restored before the
        # request's own terms); inline-tag placeholders are never glossary terms.
        later_targets = [t for _, t in later_terms]
        skip = html.placeholders if html is not None else None
        job = _Job(f"texts[{index}]", source, hops, html)
        job.units = [
            _Unit(
                glossary.protect(t, avoid=later_targets, skip=skip) if glossary else Protected(t),
                late,
            )
            for t in texts
        ]
        if entry is not None:
            job.docs, job.tokens = segment_texts(
                entry.engine, [u.protected.text for u in job.units], hops[0].source
            )
        return job

    @staticmethod
    def _check(jobs: Sequence[_Job], entries: Sequence[ModelEntry | None]) -> None:
        """Before anything is queued: every segment fits its model's window, and the request's
        segments fit each model's queue (else waiting could never help)."""
        per_model: dict[str, tuple[ModelEntry, set]] = {}
        for job, entry in zip(jobs, entries, strict=True):
            if entry is None:
                continue
            check_window(entry, job.tokens, job.field)
            hop = job.hops[0]
            mine = {(hop.source, hop.target, s) for d in job.docs for s in d.segments()}
            check_queue_room(entry, len(mine), job.field)
            per_model.setdefault(entry.config.name, (entry, set()))[1].update(mine)
        for entry, distinct in per_model.values():
            check_queue_room(entry, len(distinct), "texts")

    async def _queue(self, plan: _Plan, job: _Job, entry: ModelEntry | None) -> None:
        """Queue a job's first-hop segments; per unit, one task per paragraph answering its
        translation with its separator. Runs on the loop, so it yields every `_LOOP_SLICE`
        segments or paragraphs: queueing a text of thousands of segments costs the loop tens of
        microseconds each, which must not stall other calls (health checks included)."""
        loop = asyncio.get_running_loop()
        if entry is None:
            for unit in job.units:
                task = loop.create_task(self._finish_unit(job, unit, unit.protected.text))
                job.tasks.append([task])
                plan.tasks.append(task)
            return
        first = job.hops[0]
        params = GenerationParams(first.source, first.target)
        segments = [s for d in job.docs for s in d.segments()]
        futures: list[asyncio.Future] = []
        for start in range(0, len(segments), _LOOP_SLICE):
            if start:
                await asyncio.sleep(0)
            end = start + _LOOP_SLICE
            queued = self.generator.submit(
                entry, segments[start:end], job.tokens[start:end], params, job.field
            )
            plan.futures.extend(queued)
            futures.extend(queued)
        start = 0
        made = 0
        for unit_index, (unit, doc) in enumerate(zip(job.units, job.docs, strict=True)):
            tasks = []
            for index, count in enumerate(doc.paragraph_segment_counts()):
                mine = futures[start : start + count]
                where = (unit_index, index, start)
                task = loop.create_task(self._paragraph(job, unit, doc, mine, where))
                tasks.append(task)
                plan.tasks.append(task)
                start += count
                made += 1
                if made % _LOOP_SLICE == 0:
                    await asyncio.sleep(0)
            if not tasks:  # nothing but whitespace: kept as it is
                task = loop.create_task(_value(doc.leading))
                tasks.append(task)
                plan.tasks.append(task)
            job.tasks.append(tasks)

    async def _paragraph(
        self,
        job: _Job,
        unit: _Unit,
        doc: Document,
        mine: list[asyncio.Future],
        where: tuple[int, int, int],
    ) -> str:
        """One paragraph's translation with its separator; its output checks' flags (segment
        indexes within the text) are recorded on the job. `where`: (unit, paragraph, first
        segment) indexes."""
        unit_index, index, first_segment = where
        para = doc.paragraphs[index]
        results = await asyncio.gather(*mine)
        if job.html is not None and self.registry.get(job.hops[0].model).engine.instruct:
            sources = [p.text for p in para.pieces if p.translate]
            results = await self._redo_lost_placeholders(job, sources, list(results))
        job.counts.input_tokens += sum(r.input_tokens for r in results)
        job.counts.output_tokens += sum(r.output_tokens for r in results)
        sources = [p.text for p in para.pieces if p.translate]
        flags = unit.check_glossary(sources, [r.text for r in results], first_segment)
        for k, r in enumerate(results):
            flags += [
                dataclasses.replace(f, segment_index=first_segment + k)
                for f in getattr(r, "flags", ())
            ]
        outputs = iter(r.text for r in results)
        content = "".join(next(outputs) if p.translate else p.text for p in para.pieces)
        if unit.early:
            content, applied = await asyncio.to_thread(unit.restore, content, unit.early)
            job.note(applied)
        later: list[output_checks.OutputFlag] = []
        pivoted = content  # the request's placeholders still in it, for the later hops
        for hop in job.hops[1:]:
            content = await self.translate_plain(content, hop, job.counts, job.field, later)
        if len(job.hops) > 1:
            flags += unit.check_glossary([pivoted], [content], first_segment)
        flags += [dataclasses.replace(f, segment_index=first_segment) for f in later]
        job.flags[(unit_index, index)] = flags
        content = await self._finish_unit(job, unit, content)
        return (doc.leading if index == 0 else "") + content + para.separator

    async def _redo_lost_placeholders(self, job: _Job, sources: list[str], results: list) -> list:
        """An instruction model's unit whose inline-tag placeholders did not all come back is
        translated again sentence by sentence (smaller units keep tags better); the sentences'
        outputs are used when they lose fewer placeholders. A one-sentence unit stays as it is
        (markup.py puts a lost placeholder back at its relative position)."""
        pattern = job.html.placeholders
        hop = job.hops[0]
        entry = self.registry.get(hop.model)

        def lost(source: str, output: str) -> int:
            wanted, got = pattern.findall(source), pattern.findall(output)
            return sum(max(0, wanted.count(t) - got.count(t)) for t in set(wanted))

        for k, (source, result) in enumerate(zip(sources, results, strict=True)):
            if not lost(source, result.text):
                continue

            def split(source: str = source) -> tuple[Document, list[int]]:
                [doc], tokens = segment_texts(entry.engine, [source], hop.source, sentences=True)
                return doc, tokens

            doc, tokens = await asyncio.to_thread(split)
            if len(tokens) < 2:
                continue
            futures = self.generator.submit(
                entry, doc.segments(), tokens, GenerationParams(hop.source, hop.target), job.field
            )
            parts = await await_or_abandon(futures)
            text = doc.render([p.text for p in parts])
            spent_in = result.input_tokens + sum(p.input_tokens for p in parts)
            spent_out = result.output_tokens + sum(p.output_tokens for p in parts)
            if lost(source, text) < lost(source, result.text):
                flags = tuple(f for p in parts for f in getattr(p, "flags", ()))
            else:
                text, flags = result.text, tuple(getattr(result, "flags", ()))
            results[k] = output_checks.CheckedOutput(text, spent_in, spent_out, flags)
        return results

    @staticmethod
    async def _finish_unit(job: _Job, unit: _Unit, text: str) -> str:
        """The unit's remaining glossary placeholders restored (on a worker thread)."""
        if not unit.protected.entries:
            return text
        text, applied = await asyncio.to_thread(unit.restore, text, None)
        job.note(applied)
        return text


async def _in_turn(starts: Sequence[Callable[[], Awaitable[T]]]) -> list[T]:
    """The results of `starts` (each starts one piece of work), at most `_PREPARING_AT_ONCE` of
    them running at a time. The worker threads are shared by every call: a call of 128 texts
    that queued them all at once would make every other call's preparation wait behind its
    own (a one-sentence call took 3.5 s instead of 75 ms)."""
    results: list[T] = [None] * len(starts)  # type: ignore[list-item]
    pending = list(enumerate(starts))

    async def runner() -> None:
        while pending:
            index, start = pending.pop(0)
            results[index] = await start()

    runners = [asyncio.ensure_future(runner()) for _ in range(min(_PREPARING_AT_ONCE, len(starts)))]
    try:
        await asyncio.gather(*runners)
    finally:
        for r in runners:
            r.cancel()
    return results


async def _value(text: str) -> str:
    return text


@dataclass
class _Plan:
    """A call's jobs, and what to cancel when it ends (the futures: tasks cancelled before they
    started never get to cancel their own)."""

    jobs: list[_Job] = field(default_factory=list)
    tasks: list[asyncio.Task] = field(default_factory=list)
    futures: list[asyncio.Future] = field(default_factory=list)

    def cancel(self) -> None:
        for task in self.tasks:
            task.cancel()
        for future in self.futures:
            future.cancel()


class _Unit:
    """One unit of a text (the plain text, or an HTML block) with its glossary placeholders."""

    def __init__(self, protected: Protected, late: set[str] | None):
        self.protected = protected
        # Placeholders restored right after the first hop (None: all of them at the end).
        self.early = (
            None
            if late is None
            else {t for t, (source, _) in protected.entries.items() if source not in late}
        )

    def restore(self, text: str, only: set[str] | None) -> tuple[str, list[tuple[str, str]]]:
        return self.protected.restore(text, only=only)

    def check_glossary(
        self, sources: list[str], outputs: list[str], first_segment: int
    ) -> list[output_checks.OutputFlag]:
        """A `glossary_term_missing` flag for each placeholder a segment lost."""
        flags = []
        for k, (source, output) in enumerate(zip(sources, outputs, strict=True)):
            for term, _ in self.protected.missing(output, within=source):
                flags.append(
                    output_checks.OutputFlag(
                        output_checks.GLOSSARY_TERM_MISSING,
                        f"glossary term {term!r} did not come back; not applied",
                        segment_index=first_segment + k,
                    )
                )
        return flags


@dataclass
class _Job:
    """One text of a request: its route, units, HTML skeleton (if any), segments, paragraph
    tasks, token counts and the glossary entries applied."""

    field: str
    source: Source
    hops: list[Hop]
    html: HtmlDocument | None
    units: list[_Unit] = field(default_factory=list)
    docs: list[Document] = field(default_factory=list)
    tokens: list[int] = field(default_factory=list)
    tasks: list[list[asyncio.Task]] = field(default_factory=list)  # per unit, per paragraph
    counts: TokenCounts = field(default_factory=TokenCounts)
    applied: list[tuple[str, str]] = field(default_factory=list)
    # (unit index, paragraph index) -> the output checks' flags of that paragraph.
    flags: dict[tuple[int, int], list[output_checks.OutputFlag]] = field(default_factory=dict)

    def all_flags(self) -> list[output_checks.OutputFlag]:
        """Every flag of the text, in segment order."""
        flags = [f for key in sorted(self.flags) for f in self.flags[key]]
        return sorted(flags, key=lambda f: f.segment_index)

    def chunk_flags(self, chunk: int) -> list[output_checks.OutputFlag]:
        """The flags of one streamed chunk (plain text: a paragraph; HTML: a block)."""
        if self.html is None:
            return sorted(self.flags.get((0, chunk), []), key=lambda f: f.segment_index)
        flags = [f for (u, _), fs in self.flags.items() if u == chunk for f in fs]
        return sorted(flags, key=lambda f: f.segment_index)

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

    def render(self, unit_outputs: list[str]) -> str:
        """The whole text from its units' translations (call on a worker thread)."""
        return self.html.render(unit_outputs) if self.html is not None else unit_outputs[0]


def _chunks(job: _Job) -> list:
    """Awaitables of a text's streamed pieces: plain, its paragraphs; HTML, its blocks with the
    markup around them (the first carries the skeleton before it, the last the one after)."""
    if job.html is None:
        return job.tasks[0]
    html = job.html
    if not html.blocks:
        return [_value(html.skeleton[0])]

    async def block(i: int) -> str:
        text = "".join(await asyncio.gather(*job.tasks[i]))

        def render() -> str:
            out = html.blocks[i].render(text) + html.skeleton[i + 1]
            return (html.skeleton[0] + out) if i == 0 else out

        return await asyncio.to_thread(render)

    return [block(i) for i in range(len(html.blocks))]
