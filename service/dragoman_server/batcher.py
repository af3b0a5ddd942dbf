"""The dynamic batcher: one per model. Segments from concurrent requests are merged into batches.

Callers on the event loop submit segments and get one asyncio future each. A worker thread takes
batches of up to `max_batch_size` segments / `max_batch_tokens` padded tokens, waiting
`max_queue_delay_ms` for a batch to fill (longer, up to a tenth of the last batch's time, while
the callers of the last batch are still coming back: see `_wait_for_batch`), runs the engine, and
answers each future on its loop with `call_soon_threadsafe`. A segment whose future was cancelled
(deadline, client gone) is dropped before it reaches the model, and a running batch stops early once
every segment in it is abandoned.

One caller's segment never fails another's: when the model fails on a batch, the batch is split in
two and each half run again (bisection), until the segment that fails is alone; only its caller
gets the error (Internal, GENERATION_FAILED). A batch that fails for every input (a broken model)
costs about twice as many model calls as it has segments, once.

Nor does one call's size hold up another's: segments wait in one queue per call (see
fairness.py), and batches are filled round-robin across the calls waiting, one segment of each
in turn. A one-sentence call arriving behind a call of 4,000 segments goes into the next batch,
not after the 4,000.
"""

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .engines.base import Engine, Generated, GenerationParams
from .errors import Internal, InvalidArgument, ResourceExhausted, Unavailable
from .fairness import FairQueue, current_call

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Item:
    text: str
    tokens: int
    params: GenerationParams
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    enqueued: float = field(default_factory=time.monotonic)

    @property
    def abandoned(self) -> bool:
        # Read from the worker thread: Future.done() only reads a state attribute.
        return self.future.done()


@dataclass
class BatcherStats:
    """Counters since start; read by logs and metrics."""

    batches: int = 0
    segments: int = 0
    dropped: int = 0
    failed: int = 0  # segments the model failed on (each alone, after bisection)
    stopped_early: int = 0
    largest_batch: int = 0
    busy_seconds: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0


# How long a filling batch may keep waiting for arrivals, as a fraction of the last batch's time.
FILL_FRACTION = 0.1

BatchObserver = Callable[[str, int, int, float], None]  # model, batch size, queue depth, seconds


class Batcher:
    """Dynamic batching in front of one engine."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_batch_size: int = 32,
        max_batch_tokens: int = 8192,
        max_queue_delay_ms: float = 5.0,
        max_queue_size: int = 4096,
        observer: BatchObserver | None = None,
    ):
        self.engine = engine
        self.max_batch_size = max(1, max_batch_size)
        self.max_batch_tokens = max(1, max_batch_tokens)
        self.max_queue_delay = max(0.0, max_queue_delay_ms) / 1000.0
        self.max_queue_size = max_queue_size
        self.observer = observer
        self.stats = BatcherStats()
        # Waiting segments, one queue per call, in turn order (round-robin: see _take_batch).
        self._queue: FairQueue[_Item] = FairQueue()
        self._cond = threading.Condition()
        self._running = True
        self._last_batch_seconds, self._expected = 0.0, 0
        self._free_since = 0.0
        self._thread = threading.Thread(
            target=self._work, name=f"batcher-{engine.name}", daemon=True
        )
        self._thread.start()

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    def submit(
        self, texts: Sequence[str], token_counts: Sequence[int], params: GenerationParams
    ) -> list[asyncio.Future]:
        """Queue segments; returns one future per segment. Call from the event loop."""
        loop = asyncio.get_running_loop()
        if len(texts) > self.max_queue_size:
            # Waiting cannot make room for these: the data plane refuses them earlier, naming the
            # field; this is the last line for any other caller.
            raise over_queue(self.engine.name, len(texts), self.max_queue_size)
        call = current_call()
        items = [
            _Item(t, n, params, loop.create_future(), loop)
            for t, n in zip(texts, token_counts, strict=True)
        ]
        with self._cond:
            if not self._running:
                raise _shutting_down(self.engine.name)
            if len(self._queue) + len(items) > self.max_queue_size:
                raise queue_full(self.engine.name, len(self._queue), self.max_queue_size)
            self._queue.extend(call, items)
            self._cond.notify()
        return [item.future for item in items]

    async def generate(
        self, texts: Sequence[str], token_counts: Sequence[int], params: GenerationParams
    ) -> list[Generated]:
        """Submit and wait for all; cancelling the caller abandons every segment."""
        return await await_or_abandon(self.submit(texts, token_counts, params))

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop the worker; queued segments fail."""
        with self._cond:
            self._running = False
            self._cond.notify_all()
        self._thread.join(timeout)

    @staticmethod
    def _next_of(queue: deque[_Item], params: GenerationParams) -> _Item | None:
        """A call's first waiting segment with these params."""
        for item in queue:
            if item.params == params:
                return item
        return None

    def _take_batch(self) -> list[_Item]:
        """Round-robin over the calls waiting, in their turn order (fairness.py): one segment of
        each in turn, all with the params of the first call's first segment, within the batch's
        size and token budget."""
        self.stats.dropped += len(self._queue.remove_if(lambda item: item.abandoned))
        turns = self._queue.turns()
        if not turns:
            return []
        params = turns[0][1][0].params
        batch: list[_Item] = []
        longest = 0
        while turns and len(batch) < self.max_batch_size:
            still = []
            for call, queue in turns:
                if len(batch) >= self.max_batch_size:
                    break
                item = self._next_of(queue, params)
                if item is None:
                    continue
                if batch and (len(batch) + 1) * max(longest, item.tokens) > self.max_batch_tokens:
                    continue  # over the token budget: this call waits for the next batch
                self._queue.take(call, item)
                batch.append(item)
                longest = max(longest, item.tokens)
                still.append((call, queue))
            turns = still
        return batch

    def _wait_for_batch(self) -> list[_Item]:
        with self._cond:
            while self._running and not self._queue:
                self._cond.wait()
            if not self._running:
                return []
            # Closed-loop callers (the usual case: each waits for its answer, then sends the next)
            # come back from a batch milliseconds apart, not at once. A fixed wait from the first
            # arrival would start a batch of one (nearly as slow as a full one) and split every
            # round in two. So while fewer segments wait than are expected (the last batch's plus
            # those that queued while it ran), the batch keeps waiting, up to FILL_FRACTION of the
            # last batch's time; once that many are here (or for a lone caller) only
            # `max_queue_delay` applies.
            first = min(queue[0].enqueued for _, queue in self._queue.turns())
            usual = first + self.max_queue_delay
            # Counted from when the worker was free: segments that queued during the last batch
            # have waited, but the callers it answered have only just been able to come back.
            free = max(first, self._free_since)
            cap = max(usual, free + FILL_FRACTION * self._last_batch_seconds)
            expected = min(self.max_batch_size, max(1, self._expected))
            while self._running and len(self._queue) < self.max_batch_size:
                fill_by = usual if len(self._queue) >= expected else cap
                remaining = fill_by - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._take_batch()

    def _work(self) -> None:
        while True:
            batch = self._wait_for_batch()
            if not batch:
                if not self._running:
                    break
                continue
            self._run(batch)
        with self._cond:
            pending = self._queue.drain()
        for item in pending:
            item.loop.call_soon_threadsafe(_fail, item.future, _shutting_down(self.engine.name))

    def _run(self, batch: list[_Item]) -> None:
        batch.sort(key=lambda item: item.tokens)
        depth = len(self._queue)
        started = time.perf_counter()
        try:
            results = self.engine.generate(
                [item.text for item in batch],
                batch[0].params,
                should_stop=lambda: all(item.abandoned for item in batch),
            )
        except Exception as exc:
            self._isolate(batch, exc)
            return
        elapsed = time.perf_counter() - started
        # The callers just answered will be back, and those who queued meanwhile are still here.
        self._last_batch_seconds, self._expected = elapsed, len(batch) + len(self._queue)
        self._free_since = time.monotonic()
        stats = self.stats
        stats.batches += 1
        stats.segments += len(batch)
        stats.largest_batch = max(stats.largest_batch, len(batch))
        stats.busy_seconds += elapsed
        stats.input_tokens += sum(r.input_tokens for r in results)
        stats.output_tokens += sum(r.output_tokens for r in results)
        if all(item.abandoned for item in batch):
            stats.stopped_early += 1
        log.debug(
            "model %s: batch of %d in %.3fs, %d waiting",
            self.engine.name,
            len(batch),
            elapsed,
            depth,
        )
        if self.observer:
            self.observer(self.engine.name, len(batch), depth, elapsed)
        for item, result in zip(batch, results, strict=True):
            item.loop.call_soon_threadsafe(_succeed, item.future, result)

    def _isolate(self, batch: list[_Item], exc: Exception) -> None:
        """After a failed batch: run each half again, so that only the failing segment fails."""
        live = [item for item in batch if not item.abandoned]
        self.stats.dropped += len(batch) - len(live)
        if len(live) > 1:
            log.warning(
                "model %s: batch of %d failed (%s: %s); retrying it in halves",
                self.engine.name,
                len(live),
                type(exc).__name__,
                exc,
            )
            half = len(live) // 2
            self._run(live[:half])
            self._run(live[half:])
            return
        for item in live:
            self.stats.failed += 1
            log.error(
                "model %s: generation failed on a segment of %d tokens: %s: %s",
                self.engine.name,
                item.tokens,
                type(exc).__name__,
                exc,
                exc_info=exc,
            )
            error = Internal(
                f"model {self.engine.name!r} failed on a segment of this request "
                f"({type(exc).__name__}: {exc})",
                reason="GENERATION_FAILED",
                metadata={"model": self.engine.name},
            )
            item.loop.call_soon_threadsafe(_fail, item.future, error)


async def await_or_abandon(futures: Sequence[asyncio.Future]) -> list:
    """The futures' results in order; when the caller is cancelled or one of them fails, the
    others are cancelled: a batcher's segments are abandoned (dropped before the model), a
    single-flight share is let go."""
    try:
        return list(await asyncio.gather(*futures))
    except BaseException:
        for future in futures:
            future.cancel()
        raise


def over_queue(model: str, count: int, limit: int, field: str | None = None) -> InvalidArgument:
    """TEXT_TOO_MANY_SEGMENTS: `count` segments are more than the model's whole queue holds, so
    waiting can never make room for them (not a "retry later")."""
    where = f"{field}: splits into" if field else "the call has"
    return InvalidArgument(
        f"{where} {count} segments for model {model!r}, more than its queue holds ({limit}); "
        "send fewer or shorter texts per call",
        reason="TEXT_TOO_MANY_SEGMENTS",
        field=field,
        metadata={"limit": str(limit), "model": model},
    )


def queue_full(model: str, waiting: int, limit: int) -> ResourceExhausted:
    """QUEUE_FULL: the model's queue has no room now; retry after a second."""
    return ResourceExhausted(
        f"model {model!r} queue is full ({waiting} segments waiting, limit {limit}); retry later",
        reason="QUEUE_FULL",
        retry_after_s=1.0,
        metadata={"limit": str(limit), "model": model},
    )


def _shutting_down(model: str) -> Unavailable:
    return Unavailable(
        f"model {model!r} is shutting down; retry on another server", reason="SHUTTING_DOWN"
    )


def _succeed(future: asyncio.Future, result: Generated) -> None:
    if not future.done():
        future.set_result(result)


def _fail(future: asyncio.Future, exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
