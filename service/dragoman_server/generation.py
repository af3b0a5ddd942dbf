"""Segment generation: from segments to model outputs, through the cache, single-flight and the
model's batcher, each output checked.

A segment already translated is answered from the translation cache; one being generated for
another call (or twice in this one) is shared (see singleflight.py); only the rest is queued on
the model's batcher. Before anything is queued, the segments are checked against what can never
succeed: a segment over the model's window (an unsplittable piece, such as one character with
hundreds of combining marks) or more segments than the model's queue holds is an InvalidArgument
for this caller only, never a failed batch for everybody else.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import Counter
from collections.abc import Sequence

from . import output_checks
from .batcher import over_queue
from .cache import TranslationCache
from .engines import Generated, GenerationParams
from .errors import InvalidArgument
from .registry import ModelEntry
from .singleflight import SingleFlight

log = logging.getLogger(__name__)

__all__ = ["SegmentGenerator", "check_queue_room", "check_window"]


def check_window(entry: ModelEntry, tokens: Sequence[int], field: str) -> None:
    """InvalidArgument (SEGMENT_TOO_LONG) when a segment cannot fit the model's window."""
    window = entry.engine.max_input_tokens
    longest = max(tokens, default=0)
    if longest > window:
        raise InvalidArgument(
            f"{field}: holds a piece of {longest} tokens that cannot be split further (such as "
            f"one character with hundreds of combining marks); model {entry.config.name!r} takes "
            f"at most {window} tokens at once",
            reason="SEGMENT_TOO_LONG",
            field=field,
            metadata={"limit": str(window), "model": entry.config.name},
        )


def check_queue_room(entry: ModelEntry, count: int, field: str) -> None:
    """InvalidArgument (TEXT_TOO_MANY_SEGMENTS) when `count` segments exceed the model's whole
    queue: waiting can never make room for them, so it is not a "retry later"."""
    limit = entry.batcher.max_queue_size
    if count > limit:
        raise over_queue(entry.config.name, count, limit, field)


class SegmentGenerator:
    """Generates segments for every call of the server; one per data plane."""

    def __init__(self, cache: TranslationCache):
        # Segment translations already made; `cache.stats()` for logs and metrics.
        self.cache = cache
        self.flights = SingleFlight()
        # Segments flagged by the output checks, by kind (see output_checks).
        self.flagged: Counter[str] = Counter()

    def submit(
        self,
        entry: ModelEntry,
        segments: Sequence[str],
        tokens: Sequence[int],
        params: GenerationParams,
        field: str,
    ) -> list[asyncio.Future]:
        """One future per segment: cache hits at once; a segment already being generated (in this
        call or a concurrent one) is shared, not generated again; only the rest is queued.
        Cancelling a future lets go of that segment. `field` names the input in errors."""
        check_window(entry, tokens, field)
        loop = asyncio.get_running_loop()
        out: list[asyncio.Future | None] = [None] * len(segments)
        new: dict[tuple, list[int]] = {}
        for i, segment in enumerate(segments):
            key = (entry.config.name, params, segment)
            if key in new:
                new[key].append(i)
                continue
            shared = self.flights.join(key)
            if shared is not None:
                out[i] = shared
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
            check_queue_room(entry, len(keys), field)
            firsts = [new[k][0] for k in keys]
            try:
                queued = entry.batcher.submit(
                    [segments[i] for i in firsts], [tokens[i] for i in firsts], params
                )
            except BaseException:
                _release(out)
                raise
            for key, future in zip(keys, queued, strict=True):
                first, *others = new[key]
                out[first] = self.flights.start(
                    key, self._finish(future, key, entry, tokens[first])
                )
                for i in others:
                    out[i] = self.flights.join(key)
        return out  # type: ignore[return-value]

    async def _finish(
        self, future: asyncio.Future, key: tuple, entry: ModelEntry, tokens: int
    ) -> Generated:
        """The checked output of one segment: a flagged one is generated once more with stricter
        parameters (output_checks.retry_params) unless the model's `output_checks` is "flag" (or
        not checked at all: "off"), carries its flags, and is never cached."""
        result: Generated = await future
        source = key[2]
        mode = entry.config.output_checks
        findings = (
            []
            if mode == "off"
            else await asyncio.to_thread(output_checks.check, source, result.text)
        )
        # Flags the engine raised itself (an instruction model's wrapper removed): the output is
        # kept but, like every flagged one, not cached (a cache hit would lose the flag).
        own = tuple(getattr(result, "flags", ()))
        if not findings:
            if not own:
                self.cache.put(key, result.text)
            else:
                self.flagged.update(f.kind for f in own)
            return result
        if mode == "flag":
            checked = output_checks.unregenerated(result, findings)
        else:
            checked = await self._regenerate(entry, key, tokens, result, findings)
        if own:
            checked = dataclasses.replace(checked, flags=own + tuple(checked.flags))
        self.flagged.update(f.kind for f in checked.flags)
        log.warning(
            "model %s: output flagged (%s): %d chars in, %d out",
            key[0],
            "; ".join(f"{f.kind}: {f.detail}" for f in checked.flags),
            len(source),
            len(checked.text),
        )
        return checked

    @staticmethod
    async def _regenerate(
        entry: ModelEntry, key: tuple, tokens: int, result: Generated, findings: list
    ) -> output_checks.CheckedOutput:
        """A flagged segment generated once more with stricter parameters, the better output
        kept (the first, flagged, when the regeneration fails)."""
        _, params, source = key
        try:
            [again] = await entry.batcher.generate(
                [source], [tokens], output_checks.retry_params(params, findings)
            )
        except Exception as exc:  # queue full, shutting down, model error: the first output stands
            log.warning("model %s: regeneration of a flagged segment failed: %s", key[0], exc)
            checked = output_checks.unregenerated(result, findings)
        else:
            checked = await asyncio.to_thread(output_checks.choose, source, result, findings, again)
        return checked


def _release(futures: Sequence[asyncio.Future | None]) -> None:
    for future in futures:
        if future is not None:
            future.cancel()
