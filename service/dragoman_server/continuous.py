"""Continuous (iteration-level) batching for decoder-only language models.

Requests join the running batch at each decoding step and leave when they end (EOS, their own
`max_new_tokens`, a stop string, or cancellation), so a batch never spends its compute on rows that
have finished, as a static batch does until its longest member ends.

How, and why not transformers' own: transformers 5 ships continuous batching
(`init_continuous_batching`, a paged KV cache, its own scheduler thread). Behind this module's
interface (`TransformersContinuousBatcher`) and tuned (`num_blocks` from our budget, so it needs no
psutil to size its cache; page size 32; CUDA graphs off) it no longer takes 40 s for four requests,
but on this 2-core CPU it was still slower than a loop over the model's ordinary forward pass (0.91x
the output tokens/s of `ContinuousBatcher` on the benchmark's Qwen2.5-0.5B-size model, with 290 MB
more RSS: README-chat-bench.md), and it cannot hold EOS back for a request's `min_new_tokens`
without per-request logits processors. So `ContinuousBatcher` is Dragoman's own scheduler over the
model's forward pass, written by hand because no kept library offers iteration-level batching over
an unmodified HF model on CPU with a hard KV budget:

- the running batch shares one `DynamicCache` whose rows are *left-padded* to a common width, with
  a 2-D attention mask marking each row's real tokens and explicit `position_ids` per row (the
  same layout `generate()` uses for a left-padded batch, so greedy results match it);
- a new request is prefilled alone (in chunks of `prefill_chunk_tokens`, interleaved with decode
  steps so that a long prompt does not stall the others), then its cache is padded and concatenated
  into the batch; a finished or cancelled row is dropped with `index_select`, and the columns that
  no remaining row uses are trimmed from the left;
- KV memory is bounded by `kv_cache_bytes`: since rows are padded to the longest, admission
  reserves `rows x longest (prompt + max_new_tokens)` tokens of cache, which bounds the real cache
  at every step; a request that cannot fit now waits in a bounded FIFO queue, a full queue is
  refused with RESOURCE_EXHAUSTED (KV_CACHE_FULL), and one that could never fit with
  INVALID_ARGUMENT (SEGMENT_TOO_LONG).

The implementation stays a choice (`make_continuous_batcher(implementation=...)`): "dragoman" (the
default, best measured on CPU) or "transformers" (paged attention, flash kernels and CUDA graphs:
measure it on a GPU, where the padded rows of the default cost more than they do here).

Decoding is greedy. The worker runs on its own thread; text deltas and results reach the event
loop with `call_soon_threadsafe`. Model code here never imports grpc.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .engines.base import Generated
from .errors import Internal, InvalidArgument, ResourceExhausted, Unavailable

log = logging.getLogger(__name__)

# model name, rows in the step, requests waiting, seconds of the step
StepObserver = Callable[[str, int, int, float], None]

_END = object()


@dataclass
class ContinuousStats:
    """Counters since start; read by logs, metrics and tests."""

    steps: int = 0  # batched decode steps
    prefills: int = 0  # prefill chunks run
    tokens: int = 0  # output tokens generated
    joined: int = 0  # requests that entered the running batch (prefill started)
    left: int = 0  # requests that left it, for any reason
    cancelled: int = 0  # of which (or from the queue) cancelled by their caller
    failed: int = 0
    refused: int = 0  # submit() refusals (queue full)
    largest_batch: int = 0
    busy_seconds: float = 0.0
    kv_bytes: int = 0  # KV cache held now (padded rows x width)
    peak_kv_bytes: int = 0
    reserved_kv_bytes: int = 0  # what admission holds for the running rows now


def kv_bytes_per_token(config, dtype_size: int) -> int:
    """Bytes of KV cache one token takes: 2 (K and V) x layers x KV heads x head dim x dtype size."""
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    heads = text.num_attention_heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    return 2 * text.num_hidden_layers * kv_heads * head_dim * dtype_size


class GenerationStream:
    """One request's output, on the event loop: iterate for text deltas, await `result()`."""

    def __init__(self, loop: asyncio.AbstractEventLoop, request: _Request):
        self._loop = loop
        self._request = request
        self._deltas: asyncio.Queue = asyncio.Queue()
        self._future: asyncio.Future = loop.create_future()

    def __aiter__(self):
        return self._iterate()

    async def _iterate(self):
        finished = False
        try:
            while True:
                item = await self._deltas.get()
                if item is _END:
                    break
                yield item
            finished = True
        finally:
            if not finished:  # the consumer stopped early or was cancelled: it is gone
                self.cancel()
        if self._future.done() and not self._future.cancelled():
            exc = self._future.exception()
            if exc is not None:
                raise exc

    async def result(self) -> Generated:
        """The whole output. Cancelling the awaiting task cancels the request."""
        try:
            return await asyncio.shield(self._future)
        except asyncio.CancelledError:
            self.cancel()
            raise

    def cancel(self) -> None:
        """Leave the batch at the next step and free its cache. Call from the event loop."""
        self._request.cancelled = True
        self._request.wake()
        if not self._future.done():
            self._future.cancel()
        self._deltas.put_nowait(_END)

    @property
    def done(self) -> bool:
        return self._future.done()

    # Called on the loop by the worker (through call_soon_threadsafe).
    def _on_delta(self, text: str) -> None:
        if not self._future.done():
            self._deltas.put_nowait(text)

    def _on_done(self, result: Generated) -> None:
        if not self._future.done():
            self._future.set_result(result)
            self._deltas.put_nowait(_END)

    def _on_error(self, exc: BaseException) -> None:
        if not self._future.done():
            self._future.set_exception(exc)
            self._deltas.put_nowait(_END)


@dataclass(eq=False)
class _Request:
    prompt_ids: list[int]
    max_new_tokens: int
    min_new_tokens: int
    stop_strings: tuple[str, ...]
    loop: asyncio.AbstractEventLoop
    wake: Callable[[], None]
    outbox: list
    stream: GenerationStream | None = None
    cancelled: bool = False  # set on the loop, read by the worker
    output_ids: list[int] = field(default_factory=list)
    ended_by_eos: bool = False
    emitted: int = 0  # characters of text already sent as deltas
    prefilled: int = 0  # prompt tokens already in `cache`
    cache: object | None = None  # its own DynamicCache while it is prefilled

    @property
    def reserve(self) -> int:
        return len(self.prompt_ids) + self.max_new_tokens

    @property
    def length(self) -> int:
        return len(self.prompt_ids) + len(self.output_ids)

    def send(self, method, *args) -> None:
        """Queue a call to run on the request's loop; the worker delivers them after each step,
        once its bookkeeping (stats, freed rows) is done."""
        self.outbox.append((self.loop, method, args))


class ContinuousBatcher:
    """Iteration-level batching over a decoder-only HF model: requests join the running batch at
    each decoding step and leave when they end."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        max_batch_size: int,
        kv_cache_bytes: int,
        name: str,
        eos_token_ids: Iterable[int],
        observer: StepObserver | None = None,
        max_queue_size: int | None = None,
        prefill_chunk_tokens: int = 512,
        max_window: int | None = None,
    ):
        import torch

        self._torch = torch
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.max_batch_size = max(1, max_batch_size)
        self.kv_cache_bytes = kv_cache_bytes
        self.eos_token_ids = frozenset(int(t) for t in eos_token_ids)
        self.observer = observer
        self.max_queue_size = max_queue_size if max_queue_size is not None else 4 * max_batch_size
        self.prefill_chunk_tokens = max(1, prefill_chunk_tokens)
        config = model.config
        text_config = config.get_text_config(decoder=True)
        self.vocab_size = model.get_input_embeddings().num_embeddings
        window = getattr(text_config, "max_position_embeddings", None)
        self.max_window = (
            min(w for w in (window, max_window) if w) if window or max_window else None
        )
        self.device = next(model.parameters()).device
        dtype_size = next(model.parameters()).element_size()
        self.bytes_per_token = kv_bytes_per_token(config, dtype_size)
        self.stats = ContinuousStats()
        self._check_model()
        self._eos = torch.tensor(sorted(self.eos_token_ids), dtype=torch.long, device=self.device)
        self._queue: deque[_Request] = deque()  # waiting for admission, FIFO
        self._cond = threading.Condition()
        self._running = True
        self._prefilling: deque[_Request] = deque()  # admitted, prompt not yet all in cache
        self._rows: list[_Request] = []  # the running batch, in cache row order
        self._cache = None  # DynamicCache of the running batch
        self._mask = None  # [rows, width] attention mask of the running batch
        self._step_seconds = 0.1  # moving average, for retry_after_s
        self._outbox: list = []  # (loop, method, args) to deliver after the current step
        self._thread = threading.Thread(target=self._work, name=f"continuous-{name}", daemon=True)
        self._thread.start()

    def _check_model(self) -> None:
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        cache = DynamicCache(config=self.model.config)
        if any(type(layer) is not DynamicLayer for layer in cache.layers):
            # Sliding-window layers keep only part of the sequence; padding rows together would
            # need their offsets. Not needed for the models we serve today.
            raise ValueError(
                f"model {self.name!r}: continuous batching supports full-attention layers only"
            )

    # ------------------------------------------------------------------ event-loop side
    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def active(self) -> int:
        return len(self._rows) + len(self._prefilling)

    def submit(
        self,
        prompt_ids: list[int],
        *,
        max_new_tokens: int,
        stop_strings: tuple[str, ...] = (),
        min_new_tokens: int = 0,
    ) -> GenerationStream:
        """Queue one request; returns its stream. Call from the event loop."""
        request = _new_request(
            self, prompt_ids, max_new_tokens, stop_strings, min_new_tokens, self._wake, self._outbox
        )
        metadata = {"model": self.name}
        with self._cond:
            if not self._running:
                raise _shutting_down(self.name)
            if len(self._queue) >= self.max_queue_size:
                self.stats.refused += 1
                raise ResourceExhausted(
                    f"model {self.name!r}: KV cache full and {len(self._queue)} requests waiting "
                    f"(limit {self.max_queue_size}); retry later",
                    reason="KV_CACHE_FULL",
                    retry_after_s=self._retry_after(),
                    metadata={**metadata, "limit": str(self.max_queue_size)},
                )
            self._queue.append(request)
            self._cond.notify()
        return request.stream

    def _retry_after(self) -> float:
        # When the first running row is expected to end; rough, read without the worker's lock.
        remaining = [r.max_new_tokens - len(r.output_ids) for r in list(self._rows)]
        steps = min(remaining) if remaining else 1
        return round(min(30.0, max(0.1, steps * self._step_seconds)), 2)

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop the worker; running and queued requests fail with UNAVAILABLE (SHUTTING_DOWN)."""
        with self._cond:
            self._running = False
            self._cond.notify_all()
        self._thread.join(timeout)

    # ------------------------------------------------------------------ worker side
    def _work(self) -> None:
        torch = self._torch
        with torch.inference_mode():
            while True:
                with self._cond:
                    while self._running and not (self._queue or self._rows or self._prefilling):
                        self._cond.wait()
                    if not self._running:
                        break
                    self._admit_locked()
                self._drop_cancelled()
                try:
                    if self._prefilling:
                        self._prefill_chunk()
                    if self._rows:
                        self._decode_step()
                except Exception as exc:  # a model failure fails the requests it ran for
                    self._fail_running(exc)
                self._deliver()
        self._shut_down()
        self._deliver()

    def _deliver(self) -> None:
        """Send this step's deltas and results to their loops, one wake-up per loop."""
        if not self._outbox:
            return
        by_loop: dict = {}
        for loop, method, args in self._outbox:
            by_loop.setdefault(loop, []).append((method, args))
        self._outbox.clear()
        for loop, calls in by_loop.items():
            try:
                loop.call_soon_threadsafe(_run_calls, calls)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

    def _admit_locked(self) -> None:
        while self._queue:
            head = self._queue[0]
            if head.cancelled:
                self._queue.popleft()
                self.stats.cancelled += 1
                continue
            running = self._rows + list(self._prefilling)
            if len(running) >= self.max_batch_size:
                return
            longest = max([r.reserve for r in running] + [head.reserve])
            reserved = (len(running) + 1) * longest * self.bytes_per_token
            if running and reserved > self.kv_cache_bytes:
                return  # FIFO: the head waits for room, the others wait behind it
            self._queue.popleft()
            self._prefilling.append(head)
            self.stats.joined += 1
            self.stats.reserved_kv_bytes = reserved

    def _drop_cancelled(self) -> None:
        for request in [r for r in self._prefilling if r.cancelled]:
            self._prefilling.remove(request)
            request.cache = None
            self.stats.cancelled += 1
            self.stats.left += 1
        gone = [i for i, r in enumerate(self._rows) if r.cancelled]
        if gone:
            self.stats.cancelled += len(gone)
            self._remove_rows(gone)

    def _prefill_chunk(self) -> None:
        torch = self._torch
        from transformers import DynamicCache

        request = self._prefilling[0]
        if request.cache is None:
            request.cache = DynamicCache(config=self.model.config)
        start = request.prefilled
        chunk = request.prompt_ids[start : start + self.prefill_chunk_tokens]
        started = time.perf_counter()
        try:
            out = self.model(
                input_ids=torch.tensor([chunk], device=self.device),
                position_ids=torch.arange(start, start + len(chunk), device=self.device)[None],
                cache=request.cache,
                use_cache=True,
                logits_to_keep=1,
            )
        except Exception as exc:
            self._prefilling.popleft()
            request.cache = None
            self._fail([request], exc)
            return
        self.stats.prefills += 1
        self.stats.busy_seconds += time.perf_counter() - started
        request.prefilled += len(chunk)
        if request.prefilled < len(request.prompt_ids):
            return
        self._prefilling.popleft()
        token = self._pick(out.logits[:, -1, :], [request])[0]
        cache, request.cache = request.cache, None
        if self._append(request, token):
            self.stats.left += 1
            return
        self._join(request, cache)

    def _join(self, request: _Request, cache) -> None:
        """Pad the running batch's cache and the newcomer's to one width, then stack them."""
        torch = self._torch
        pad = torch.nn.functional.pad
        width = len(request.prompt_ids)
        ones = torch.ones((1, width), dtype=torch.long, device=self.device)
        if not self._rows:
            self._cache, self._mask, self._rows = cache, ones, [request]
        else:
            old = self._mask.shape[1]
            new_width = max(old, width)
            for mine, theirs in zip(self._cache.layers, cache.layers, strict=True):
                mine.keys = torch.cat(
                    [
                        pad(mine.keys, (0, 0, new_width - old, 0)),
                        pad(theirs.keys, (0, 0, new_width - width, 0)),
                    ]
                )
                mine.values = torch.cat(
                    [
                        pad(mine.values, (0, 0, new_width - old, 0)),
                        pad(theirs.values, (0, 0, new_width - width, 0)),
                    ]
                )
            self._mask = torch.cat(
                [pad(self._mask, (new_width - old, 0)), pad(ones, (new_width - width, 0))]
            )
            self._rows.append(request)
        self.stats.largest_batch = max(self.stats.largest_batch, len(self._rows))
        self._account()

    def _decode_step(self) -> None:
        torch = self._torch
        rows = self._rows
        started = time.perf_counter()
        input_ids = torch.tensor([[r.output_ids[-1]] for r in rows], device=self.device)
        positions = torch.tensor([[r.length - 1] for r in rows], device=self.device)
        mask = torch.cat([self._mask, self._mask.new_ones((len(rows), 1))], dim=1)
        out = self.model(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            cache=self._cache,
            use_cache=True,
            logits_to_keep=1,
        )
        self._mask = mask
        tokens = self._pick(out.logits[:, -1, :], rows)
        finished = [
            i for i, (r, t) in enumerate(zip(rows, tokens, strict=True)) if self._append(r, t)
        ]
        elapsed = time.perf_counter() - started
        self._step_seconds = 0.8 * self._step_seconds + 0.2 * elapsed
        self.stats.steps += 1
        self.stats.busy_seconds += elapsed
        self._account()
        if self.observer:
            self.observer(self.name, len(rows), len(self._queue), elapsed)
        if finished:
            self._remove_rows(finished)

    def _pick(self, logits, rows: list[_Request]) -> list[int]:
        """Greedy choice per row; EOS is not a choice before a row's min_new_tokens."""
        early = [i for i, r in enumerate(rows) if len(r.output_ids) < r.min_new_tokens]
        if early and len(self._eos):
            # In place: the logits are this step's own tensor (a copy of 16 x 151,936 cost 12 ms).
            index = self._torch.tensor(early, device=self.device)
            logits[index[:, None], self._eos[None, :]] = float("-inf")
        return logits.argmax(dim=-1).tolist()

    def _append(self, request: _Request, token: int) -> bool:
        """Record one new token; send the text that is now certain; True when the request ended."""
        self.stats.tokens += 1
        if request.cancelled:  # cancelled during this step
            self.stats.cancelled += 1
            return True
        return _take_token(request, token, self.tokenizer, self.eos_token_ids)

    def _remove_rows(self, indices: list[int]) -> None:
        torch = self._torch
        gone = set(indices)
        keep = [i for i in range(len(self._rows)) if i not in gone]
        self.stats.left += len(gone)
        if not keep:
            self._rows, self._cache, self._mask = [], None, None
            self._account()
            return
        index = torch.tensor(keep, device=self.device)
        mask = self._mask.index_select(0, index)
        used = mask.any(dim=0).nonzero()
        lead = int(used[0]) if len(used) else 0  # columns no remaining row uses
        for layer in self._cache.layers:
            layer.keys = layer.keys.index_select(0, index)[:, :, lead:, :]
            layer.values = layer.values.index_select(0, index)[:, :, lead:, :]
        self._mask = mask[:, lead:]
        self._rows = [self._rows[i] for i in keep]
        self._account()

    def _account(self) -> None:
        stats = self.stats
        width = self._mask.shape[1] if self._mask is not None else 0
        stats.kv_bytes = len(self._rows) * width * self.bytes_per_token
        stats.peak_kv_bytes = max(stats.peak_kv_bytes, stats.kv_bytes)
        running = self._rows + list(self._prefilling)
        stats.reserved_kv_bytes = (
            len(running) * max(r.reserve for r in running) * self.bytes_per_token if running else 0
        )

    def _fail(self, requests: list[_Request], exc: Exception) -> None:
        log.error(
            "model %s: generation failed: %s: %s", self.name, type(exc).__name__, exc, exc_info=exc
        )
        error = Internal(
            f"model {self.name!r} failed on this request ({type(exc).__name__}: {exc})",
            reason="GENERATION_FAILED",
            metadata={"model": self.name},
        )
        for request in requests:
            self.stats.failed += 1
            self.stats.left += 1
            request.send(request.stream._on_error, error)

    def _fail_running(self, exc: Exception) -> None:
        rows, self._rows, self._cache, self._mask = self._rows, [], None, None
        self._fail(rows, exc)
        self._account()

    def _shut_down(self) -> None:
        with self._cond:
            waiting, self._queue = list(self._queue), deque()
        running = self._rows + list(self._prefilling) + waiting
        self._rows, self._prefilling, self._cache, self._mask = [], deque(), None, None
        error = _shutting_down(self.name)
        for request in running:
            request.send(request.stream._on_error, error)
        self._account()


class _CallNow:
    """An outbox that delivers at once: for callers already on the request's loop."""

    @staticmethod
    def append(item) -> None:
        _loop, method, args = item
        method(*args)


class TransformersContinuousBatcher:
    """The same interface over transformers' own continuous batching (`init_continuous_batching`:
    paged KV cache, its own scheduler and thread). For GPUs, where its paged attention kernels and
    CUDA graphs pay off; on CPU `ContinuousBatcher` is faster (README-chat-bench.md).

    The KV budget becomes the paged cache's size (`num_blocks` pages of `page_size` tokens per
    layer, allocated once), so the cache cannot grow past it; a request waits in transformers' queue
    while pages are short. Stop strings, deltas and results work as in `ContinuousBatcher` (tokens
    arrive through a result handler on the event loop). `min_new_tokens` turns EOS off in
    transformers and ends the request at the first EOS after it: exact for forced lengths
    (min == max), otherwise transformers may pick EOS earlier where generate() would not.
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        max_batch_size: int,
        kv_cache_bytes: int,
        name: str,
        eos_token_ids: Iterable[int],
        observer: StepObserver | None = None,
        max_queue_size: int | None = None,
        prefill_chunk_tokens: int = 256,
        max_window: int | None = None,
        page_size: int = 32,
    ):
        from transformers import GenerationConfig
        from transformers.generation.configuration_utils import ContinuousBatchingConfig

        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.max_batch_size = max(1, max_batch_size)
        self.kv_cache_bytes = kv_cache_bytes
        self.eos_token_ids = frozenset(int(t) for t in eos_token_ids)
        self.max_queue_size = max_queue_size if max_queue_size is not None else 4 * max_batch_size
        text_config = model.config.get_text_config(decoder=True)
        self.vocab_size = model.get_input_embeddings().num_embeddings
        window = getattr(text_config, "max_position_embeddings", None)
        self.max_window = (
            min(w for w in (window, max_window) if w) if window or max_window else None
        )
        self.bytes_per_token = kv_bytes_per_token(
            model.config, next(model.parameters()).element_size()
        )
        self.stats = ContinuousStats()
        num_blocks = max(1, kv_cache_bytes // (page_size * self.bytes_per_token))
        self.stats.kv_bytes = self.stats.peak_kv_bytes = (
            num_blocks * page_size * self.bytes_per_token
        )
        config = ContinuousBatchingConfig(
            page_size=page_size,
            num_blocks=num_blocks,
            max_batch_tokens=prefill_chunk_tokens,
            max_requests_per_batch=self.max_batch_size,
            allow_block_sharing=False,
            use_cuda_graph=False if next(model.parameters()).device.type == "cpu" else None,
        )
        generation = GenerationConfig(
            do_sample=False, eos_token_id=sorted(self.eos_token_ids) or -1, max_new_tokens=1
        )
        self._manager = model.init_continuous_batching(
            generation_config=generation, continuous_batching_config=config
        )
        self._manager.start()
        self._live: dict[str, _Request] = {}
        self._serial = 0
        self._running = True

    @property
    def queue_depth(self) -> int:
        return max(0, len(self._live) - self.max_batch_size)

    @property
    def active(self) -> int:
        return min(len(self._live), self.max_batch_size)

    def submit(
        self,
        prompt_ids: list[int],
        *,
        max_new_tokens: int,
        stop_strings: tuple[str, ...] = (),
        min_new_tokens: int = 0,
    ) -> GenerationStream:
        """Queue one request; returns its stream. Call from the event loop."""
        self._serial += 1
        request_id = f"{self.name}-{self._serial}"
        request = _new_request(
            self, prompt_ids, max_new_tokens, stop_strings, min_new_tokens,
            lambda: self._cancel(request_id), _CallNow,
        )  # fmt: skip
        if not self._running:
            raise _shutting_down(self.name)
        if len(self._live) >= self.max_batch_size + self.max_queue_size:
            self.stats.refused += 1
            raise ResourceExhausted(
                f"model {self.name!r}: KV cache full and {self.queue_depth} requests waiting "
                f"(limit {self.max_queue_size}); retry later",
                reason="KV_CACHE_FULL",
                retry_after_s=1.0,
                metadata={"model": self.name, "limit": str(self.max_queue_size)},
            )
        self._live[request_id] = request
        self.stats.joined += 1
        self._manager.register_result_handler(
            request_id, lambda output: self._on_output(request_id, output)
        )
        self._manager.add_request(
            request.prompt_ids,
            request_id=request_id,
            max_new_tokens=max_new_tokens,
            streaming=True,
            eos_token_id=-1 if request.min_new_tokens else sorted(self.eos_token_ids) or -1,
        )
        return request.stream

    def _on_output(self, request_id: str, output) -> None:
        """On the event loop: new tokens of one request (the whole list so far each time)."""
        request = self._live.get(request_id)
        if request is None:
            return
        if request.cancelled:
            self._leave(request_id, cancelled=True)
            return
        if output.error:
            self._leave(request_id)
            if not self._running:  # transformers fails what is left when it stops
                request.stream._on_error(_shutting_down(self.name))
                return
            self.stats.failed += 1
            request.stream._on_error(
                Internal(
                    f"model {self.name!r} failed on this request ({output.error})",
                    reason="GENERATION_FAILED",
                    metadata={"model": self.name},
                )
            )
            return
        seen = len(request.output_ids) + (1 if request.ended_by_eos else 0)
        for token in output.generated_tokens[seen:]:
            self.stats.tokens += 1
            if _take_token(request, token, self.tokenizer, self.eos_token_ids):
                self._leave(request_id)
                if not output.is_finished():
                    self._manager.cancel_request(request_id)
                return
        if output.is_finished():  # ended on transformers' side (its budget or EOS)
            self._leave(request_id)
            _finish(request, _decode(self.tokenizer, request))

    def _cancel(self, request_id: str) -> None:
        """On the event loop, from the stream: transformers frees its pages at its next step."""
        if request_id in self._live:
            self._leave(request_id, cancelled=True)
            self._manager.cancel_request(request_id)

    def _leave(self, request_id: str, cancelled: bool = False) -> None:
        self._live.pop(request_id, None)
        self.stats.left += 1
        self.stats.cancelled += cancelled

    def close(self, timeout: float | None = 5.0) -> None:
        """Stop transformers' thread; running and queued requests fail with SHUTTING_DOWN."""
        self._running = False
        self._manager.stop(block=True, timeout=timeout, hard_stop=True)
        error = _shutting_down(self.name)
        for request_id, request in list(self._live.items()):
            self._leave(request_id)
            try:
                request.loop.call_soon_threadsafe(request.stream._on_error, error)
            except RuntimeError:  # its loop is closed: nobody is waiting any more
                pass


def make_continuous_batcher(model, tokenizer, *, implementation: str = "dragoman", **kwargs):
    """`ContinuousBatcher` ("dragoman", the default: fastest measured on CPU) or
    `TransformersContinuousBatcher` ("transformers": paged attention, worth measuring on a GPU)."""
    if implementation == "dragoman":
        return ContinuousBatcher(model, tokenizer, **kwargs)
    if implementation == "transformers":
        return TransformersContinuousBatcher(model, tokenizer, **kwargs)
    raise ValueError(f"unknown continuous batching implementation {implementation!r}")


def _new_request(
    owner, prompt_ids, max_new_tokens, stop_strings, min_new_tokens, wake, outbox
) -> _Request:
    """Check one request against `owner`'s model (vocabulary, window, KV budget) and make it, with
    its stream on the running loop."""
    loop = asyncio.get_running_loop()
    if not prompt_ids:
        raise InvalidArgument("the prompt is empty", reason="TEXT_EMPTY")
    if max_new_tokens < 1:
        raise InvalidArgument(
            f"max_new_tokens must be at least 1, not {max_new_tokens}",
            reason="MAX_NEW_TOKENS_INVALID",
        )
    vocab = owner.vocab_size
    bad = next((t for t in prompt_ids if not 0 <= t < vocab), None)
    if bad is not None:
        raise InvalidArgument(
            f"token id {bad} is outside model {owner.name!r}'s vocabulary (0..{vocab - 1})",
            reason="TOKEN_ID_INVALID",
        )
    request = _Request(
        list(prompt_ids),
        max_new_tokens,
        max(0, min(min_new_tokens, max_new_tokens)),
        tuple(s for s in stop_strings if s),
        loop,
        wake,
        outbox,
    )
    metadata = {"model": owner.name}
    if owner.max_window is not None and request.reserve > owner.max_window:
        raise InvalidArgument(
            f"a prompt of {len(prompt_ids)} tokens plus {max_new_tokens} new tokens is more than "
            f"model {owner.name!r}'s window ({owner.max_window} tokens)",
            reason="SEGMENT_TOO_LONG",
            metadata={**metadata, "limit": str(owner.max_window)},
        )
    if request.reserve * owner.bytes_per_token > owner.kv_cache_bytes:
        limit = owner.kv_cache_bytes // owner.bytes_per_token
        raise InvalidArgument(
            f"a prompt of {len(prompt_ids)} tokens plus {max_new_tokens} new tokens is more than "
            f"model {owner.name!r}'s KV cache holds ({limit} tokens)",
            reason="SEGMENT_TOO_LONG",
            metadata={**metadata, "limit": str(limit)},
        )
    request.stream = GenerationStream(loop, request)
    return request


def _take_token(request: _Request, token: int, tokenizer, eos_token_ids) -> bool:
    """Record one new token of `request`; send the text that is now certain; True when it ended
    (EOS, its budget, or a stop string, which is cut off with what follows it)."""
    if token in eos_token_ids and len(request.output_ids) >= request.min_new_tokens:
        request.ended_by_eos = True
        _finish(request, _decode(tokenizer, request))
        return True
    request.output_ids.append(token)
    text = _decode(tokenizer, request)
    since = max(0, request.emitted - max((len(s) for s in request.stop_strings), default=0))
    if any(stop in text[since:] for stop in request.stop_strings):
        _finish(request, _earliest_cut(text, request.stop_strings))
        return True
    if len(request.output_ids) >= request.max_new_tokens:
        _finish(request, text)
        return True
    # Hold back an incomplete UTF-8 character (byte-level BPE splits them across tokens) and any
    # tail that may be the start of a stop string.
    safe = len(text.rstrip("\ufffd"))
    safe -= _held_for_stop(text[:safe], request.stop_strings)
    if safe > request.emitted:
        request.send(request.stream._on_delta, text[request.emitted : safe])
        request.emitted = safe
    return False


def _decode(tokenizer, request: _Request) -> str:
    # The whole output each time (not a sliding window): it is exactly what generate()'s callers
    # decode, and at a few hundred tokens it costs far less than a model step.
    return tokenizer.decode(request.output_ids, skip_special_tokens=True)


def _finish(request: _Request, text: str) -> None:
    if len(text) > request.emitted:
        request.send(request.stream._on_delta, text[request.emitted :])
        request.emitted = len(text)
    output_tokens = len(request.output_ids) + (1 if request.ended_by_eos else 0)
    result = Generated(text=text, input_tokens=len(request.prompt_ids), output_tokens=output_tokens)
    request.send(request.stream._on_done, result)


def _run_calls(calls: list) -> None:
    for method, args in calls:
        method(*args)


def _earliest_cut(text: str, stops: tuple[str, ...]) -> str:
    """The text before the first stop string that occurs in it (a later-listed one may be first)."""
    cut = len(text)
    for stop in stops:
        at = text.find(stop)
        if 0 <= at < cut:
            cut = at
    return text[:cut]


def _held_for_stop(text: str, stops: tuple[str, ...]) -> int:
    """How many characters at the end of `text` could be the start of a stop string."""
    held = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), held, -1):
            if text.endswith(stop[:n]):
                held = n
                break
    return held


def _shutting_down(model: str) -> Unavailable:
    return Unavailable(
        f"model {model!r} is shutting down; retry on another server", reason="SHUTTING_DOWN"
    )
