"""Batching for instruction models, behind the interface of `batcher.Batcher` (so that generation.py,
translation.py and summarization.py use it as they use a seq2seq model's batcher), plus streaming.

Two ways, per model (`batching` in its config):

- "continuous" (the default): continuous.ContinuousBatcher, iteration-level; each unit joins the
  running batch with its own prompt, output budget and stop strings, and leaves when it ends. A
  cancelled unit (caller gone, deadline) leaves at the next step and frees its cache.
- "paged": the same over transformers' own continuous batching (paged KV cache, its scheduler):
  slower than "continuous" on CPU, worth measuring on a GPU (README-chat-bench.md).
- "static": batcher.Batcher over the engine's `generate` (a batch runs until its longest member
  ends); streaming then yields the whole output at once.

Either way the engine turns a unit into a prompt (`prepare`, on a worker thread: a 30,000-token
article is not tokenised on the event loop) and the output back into the unit's text (`finish`:
stop strings, wrappers removed and flagged).
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .batcher import (
    Batcher,
    BatcherStats,
    BatchObserver,
    await_or_abandon,
    over_queue,
    queue_full,
)
from .continuous import ContinuousBatcher, TransformersContinuousBatcher, make_continuous_batcher
from .engines import Generated, GenerationParams
from .errors import ModelLoadError

if TYPE_CHECKING:
    from .engines.causal import InstructionEngine

__all__ = ["InstructBatcher"]


class InstructBatcher:
    """The batcher of one instruction model."""

    def __init__(
        self,
        engine: InstructionEngine,
        *,
        batching: str,
        max_batch_size: int,
        max_batch_tokens: int,
        max_queue_delay_ms: float,
        max_queue_size: int,
        kv_cache_bytes: int,
        observer: BatchObserver | None = None,
    ):
        self.engine = engine
        self.batching = batching
        self.max_queue_size = max_queue_size
        self._pending = 0  # units submitted and not yet answered (continuous)
        self._answered, self._input_tokens = 0, 0
        self.static: Batcher | None = None
        self.continuous: ContinuousBatcher | TransformersContinuousBatcher | None = None
        if batching == "static":
            self.static = Batcher(
                engine,
                max_batch_size=max_batch_size,
                max_batch_tokens=max_batch_tokens,
                max_queue_delay_ms=max_queue_delay_ms,
                max_queue_size=max_queue_size,
                observer=observer,
            )
        else:
            implementation = "transformers" if batching == "paged" else "dragoman"
            self.continuous = make_continuous_batcher(
                engine.model,
                # Its own copy: it decodes on its worker thread while units are being tokenised
                # on others (a fast tokenizer is not to be shared between threads).
                copy.deepcopy(engine.tokenizer),
                max_batch_size=max_batch_size,
                kv_cache_bytes=kv_cache_bytes,
                name=engine.name,
                eos_token_ids=engine.eos_token_ids,
                observer=observer,
                max_queue_size=max_queue_size,
                max_window=engine.window,
                implementation=implementation,
            )
            self.retries = Batcher(
                engine,
                max_batch_size=max_batch_size,
                max_batch_tokens=max_batch_tokens,
                max_queue_delay_ms=max_queue_delay_ms,
                max_queue_size=max_queue_size,
                observer=observer,
            )
            engine.limit_context(self.context_tokens)
            if engine.max_input_tokens < 1:
                self.close()
                raise ModelLoadError(
                    f"model {engine.name!r}: kv_cache_mb holds {self.context_tokens} tokens, no "
                    f"room for text beside a prompt of {engine.prompt_overhead} tokens and its "
                    "output; raise kv_cache_mb"
                )

    @property
    def stats(self) -> BatcherStats:
        """Counters in the static batcher's terms (for logs and metrics): with continuous
        batching a "batch" is a decoding step, a dropped segment a cancelled unit."""
        if self.static is not None:
            return self.static.stats
        own, retries = self.continuous.stats, self.retries.stats
        return BatcherStats(
            batches=own.steps + retries.batches,
            segments=self._answered + retries.segments,
            dropped=own.cancelled + retries.dropped,
            failed=own.failed + retries.failed,
            stopped_early=retries.stopped_early,
            largest_batch=max(own.largest_batch, retries.largest_batch),
            busy_seconds=own.busy_seconds + retries.busy_seconds,
            input_tokens=self._input_tokens + retries.input_tokens,
            output_tokens=own.tokens + retries.output_tokens,
        )

    @property
    def context_tokens(self) -> int:
        """The most tokens (prompt and output) one request may hold: the model's window, or
        what the KV cache holds when that is less."""
        if self.continuous is None:
            return self.engine.window
        return min(self.engine.window, self.continuous.cache_tokens)

    @property
    def queue_depth(self) -> int:
        return (self.static or self.continuous).queue_depth

    # -- the Batcher interface ---------------------------------------------------------------------

    def submit(
        self, texts: Sequence[str], token_counts: Sequence[int], params: GenerationParams
    ) -> list[asyncio.Future]:
        """One future per unit; cancelling one lets go of that unit. Call from the event loop."""
        if self.static is not None:
            return self.static.submit(texts, token_counts, params)
        if _stricter(params):
            # A regeneration with stricter decoding (output_checks.retry_params): beam search and
            # n-gram bans are generate()'s, not the greedy continuous batcher's; such segments
            # are batched together by their own static batcher.
            return self.retries.submit(texts, token_counts, params)
        if len(texts) > self.max_queue_size:
            raise over_queue(self.engine.name, len(texts), self.max_queue_size)
        if self._pending + len(texts) > self.max_queue_size:
            raise queue_full(self.engine.name, self._pending, self.max_queue_size)
        loop = asyncio.get_running_loop()
        tasks = [loop.create_task(self._one(text, params)) for text in texts]
        # Counted until done, cancelled before it started included.
        self._pending += len(tasks)
        for task in tasks:
            task.add_done_callback(self._answered_one)
        return tasks

    def _answered_one(self, _task: asyncio.Future) -> None:
        self._pending -= 1

    async def generate(
        self, texts: Sequence[str], token_counts: Sequence[int], params: GenerationParams
    ) -> list[Generated]:
        """Submit and wait for all; cancelling the caller abandons every unit."""
        return await await_or_abandon(self.submit(texts, token_counts, params))

    async def stream(
        self, text: str, params: GenerationParams, on_delta: Callable[[str], None]
    ) -> Generated:
        """Generate one unit, calling `on_delta` with each piece of raw output as it comes (static
        batching: once, at the end); returns the finished unit."""
        if self.static is not None:
            [tokens] = await asyncio.to_thread(self.engine.count_tokens, [text])
            [result] = await self.static.generate([text], [tokens], params)
            on_delta(result.text)
            return result
        self._pending += 1
        try:
            return await self._one(text, params, on_delta)
        finally:
            self._pending -= 1

    def close(self, timeout: float | None = 5.0) -> None:
        if self.static is not None:
            self.static.close(timeout)
        else:
            self.continuous.close(timeout)
            self.retries.close(timeout)

    # -- continuous ---------------------------------------------------------------------------------

    async def _one(
        self, text: str, params: GenerationParams, on_delta: Callable[[str], None] | None = None
    ) -> Generated:
        if _stricter(params):
            [tokens] = await asyncio.to_thread(self.engine.count_tokens, [text])
            [result] = await self.retries.generate([text], [tokens], params)
            return result
        prompt = await asyncio.to_thread(self.engine.prepare, text, params)
        stream = self.continuous.submit(
            prompt.ids,
            max_new_tokens=prompt.max_new_tokens,
            stop_strings=prompt.stop_strings,
            min_new_tokens=prompt.min_new_tokens,
        )
        deltas = stream.__aiter__() if on_delta is not None else None
        try:
            if deltas is not None:
                async for delta in deltas:
                    on_delta(delta)
            raw = await stream.result()
        finally:
            if not stream.done:
                stream.cancel()  # this unit was let go of: leave the batch, free the cache
            if deltas is not None:
                await deltas.aclose()
        self._answered += 1
        self._input_tokens += raw.input_tokens
        return await asyncio.to_thread(
            self.engine.finish, text, raw.text, raw.input_tokens, raw.output_tokens
        )


def _stricter(params: GenerationParams) -> bool:
    return bool(params.num_beams or params.no_repeat_ngram_size or params.repetition_penalty)
