"""The data plane: the facade the servicer calls for translation, streaming, summarisation,
detection and the model list.

Transport-free: takes validated domain inputs, returns domain results, raises domain errors. The
work is done by one part per concern, each findable by its module's name:

- source_language.py: the language given, or detected and checked against the routes;
- translation.py: texts (plain or HTML) -> units -> segments -> rendered translations;
- generation.py: segments -> outputs, through the translation cache, single-flight
  (singleflight.py) and each model's batcher (batcher.py), outputs checked and flagged (output_checks.py);
- summarization.py: summaries, cross-lingual and of any length.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from typing import TypeVar

from . import detection
from .cache import TranslationCache
from .domain import (
    ParagraphResult,
    SummarizeInput,
    SummaryResult,
    TranslateInput,
    TranslationResult,
)
from .errors import Internal
from .fairness import fair_share
from .generation import SegmentGenerator
from .registry import ModelEntry, ModelRegistry
from .router import Router
from .settings import Config
from .source_language import SourceResolver
from .summarization import Summarizer
from .translation import Translator

__all__ = ["DataPlane"]

# Translation cache entries when the `cache_size` setting is absent.
DEFAULT_CACHE_SIZE = 10_000

T = TypeVar("T")


class DataPlane:
    """Serves the domain operations; one per server."""

    def __init__(self, config: Config, registry: ModelRegistry):
        self.config = config
        self.limits = config.server
        self.registry = registry
        self.router = Router(config.models, config.server.pivot_language)
        # Segment translations already made; `cache.stats()` for logs and metrics.
        self.cache = TranslationCache(getattr(config.server, "cache_size", DEFAULT_CACHE_SIZE))
        self.sources = SourceResolver(self.router, config.models)
        self.generator = SegmentGenerator(self.cache)
        self.translator = Translator(config, registry, self.router, self.sources, self.generator)
        self.summarizer = Summarizer(
            self.limits, registry, self.router, self.sources, self.translator
        )

    @property
    def flagged(self) -> Counter[str]:
        """Segments flagged by the output checks, by kind (see output_checks)."""
        return self.generator.flagged

    async def detect(self, text: str, max_results: int = 3) -> list[detection.LanguageScore]:
        return await self.sources.detect(text, max_results)

    # Every operation runs in a `fair_share()`: its segments take turns in the model's batches
    # with the other calls', so a call's size never holds up another (see batcher.py).

    async def translate(self, request: TranslateInput) -> list[TranslationResult]:
        """Translate every text; the segments of all texts share batches."""
        with fair_share():
            return await _ends_in_a_status(self.translator.translate(request))

    async def translate_stream(self, request: TranslateInput) -> AsyncIterator[ParagraphResult]:
        """Translate every text, yielding paragraphs (HTML: blocks) in order as soon as ready."""
        with fair_share():
            stream = self.translator.translate_stream(request)
            try:
                while True:
                    try:
                        paragraph = await _ends_in_a_status(anext(stream))
                    except StopAsyncIteration:
                        return
                    yield paragraph
            finally:
                await stream.aclose()

    async def summarize(self, request: SummarizeInput) -> SummaryResult:
        """Summarise, cross-lingually when asked (see summarization.Summarizer)."""
        with fair_share():
            return await _ends_in_a_status(self.summarizer.summarize(request))

    async def summarize_stream(self, request: SummarizeInput) -> AsyncIterator[str | SummaryResult]:
        """Summarise, yielding the summary's pieces as an instruction model generates them (raw
        output), then the SummaryResult (whose `summary` is the one to keep). Other models: the
        result alone. Closing the iterator cancels the work (and frees its batch slot)."""
        deltas: asyncio.Queue[str] = asyncio.Queue()
        with fair_share():  # the work's task takes the call's share with it
            work = asyncio.ensure_future(
                _ends_in_a_status(self.summarizer.summarize(request, deltas.put_nowait))
            )
        getter: asyncio.Future | None = None
        try:
            while True:
                getter = asyncio.ensure_future(deltas.get())
                await asyncio.wait({getter, work}, return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                    continue
                getter.cancel()
                while not deltas.empty():
                    yield deltas.get_nowait()
                yield work.result()
                return
        finally:
            if getter is not None:
                getter.cancel()
            work.cancel()

    def list_models(self) -> list[ModelEntry]:
        return list(self.registry.entries.values())


async def _ends_in_a_status(work: Awaitable[T]) -> T:
    """`work`'s answer; a cancellation that did not come from this call's own cancellation (its
    task is not being cancelled) becomes an error, so the handler still sends a status instead of
    dying silently while its client waits for the deadline."""
    try:
        return await work
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        raise Internal(
            "the work for this call was cancelled by another part of the server"
        ) from None
