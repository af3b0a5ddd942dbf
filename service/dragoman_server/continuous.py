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

- the KV cache is allocated once, at construction, and written in place (`SlotCache`): each
  layer's keys and values are one buffer viewed as [slots, KV heads, width, head dim]; row r of the
  running batch owns slot r and holds its tokens at columns [0, length). A decode step writes each
  row's new column at its own length, and attention reads the first `rows` slots up to the longest
  row, a 2-D mask hiding each row's columns past its length, with explicit `position_ids` per row
  (greedy results match `generate()`). Nothing is concatenated or copied per step, so the cache
  never allocates after start and the allocator is not left holding old copies of it;
- a new request is prefilled alone into its slot (in chunks of `prefill_chunk_tokens`, interleaved
  with decode steps so that a long prompt does not stall the others) and joins the batch; a
  finished or cancelled row leaves by moving the last row into its slot (one row's copy);
- memory is bounded by `kv_cache_bytes`, which counts the cache *and* one step's working memory
  (`step_memory`: activations, logits, and the keys that attention expands for a chunked prefill),
  so the cache holds `cache_tokens = (kv_cache_bytes - fixed) // (bytes_per_token + per_token)`.
  Slots are as wide as the longest reservation (prompt + max_new_tokens) among the running
  requests, so admission reserves `rows x longest <= cache_tokens`; a request that cannot fit now
  waits in a bounded queue where calls take turns (fairness.py: an article of 50 paragraphs does
  not hold up a one-paragraph call); a full queue is refused with RESOURCE_EXHAUSTED (KV_CACHE_FULL),
  and one that could never fit with INVALID_ARGUMENT (SEGMENT_TOO_LONG).

The implementation stays a choice (`make_continuous_batcher(implementation=...)`): "dragoman" (the
default, best measured on CPU) or "transformers" (paged attention, flash kernels and CUDA graphs:
measure it on a GPU, where the padded rows of the default cost more than they do here).

Decoding is greedy. The worker runs on its own thread; text deltas and results reach the event
loop with `call_soon_threadsafe`. Model code here never imports grpc.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .engines.base import Generated
from .errors import Internal, InvalidArgument, ModelLoadError, ResourceExhausted, Unavailable
from .fairness import FairQueue, current_call

log = logging.getLogger(__name__)

# model name, rows in the step, requests waiting, seconds of the step
StepObserver = Callable[[str, int, int, float], None]

_END = object()
PREFILL_BUCKET = 32  # prefill chunks are padded to a multiple of this many tokens
TRIM_SECONDS = 1.0
KERNEL_CACHE_ENTRIES = 32
# What the bounded kernel caches may hold, counted in a CPU half-precision model's kv_cache_mb.
KERNEL_CACHE_BYTES = 32 * 2**20


def bound_kernel_caches(entries: int = KERNEL_CACHE_ENTRIES) -> None:
    """Cap oneDNN's primitive cache and ideep's (torch's bf16 matmuls on CPU) at `entries` each,
    unless the environment already sets them. Call before the first model runs.

    Each keeps a compiled kernel per matrix shape (0.6-1 MB each, measured for a 0.5B model), 1,024
    of each by default: a batcher whose row count and prompt lengths vary would otherwise grow by
    tens of MB of kernels. A decode step and a prefill use about 14 shapes, so 32 keeps them; a
    shape that was evicted is compiled again in about a millisecond.
    """
    for name in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY"):
        os.environ.setdefault(name, str(entries))


def _libc_malloc_trim():
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


_malloc_trim = _libc_malloc_trim()


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
    kv_bytes: int = 0  # KV cache in use now (tokens held by running and prefilling rows)
    peak_kv_bytes: int = 0
    reserved_kv_bytes: int = 0  # what admission holds for the running rows now
    kv_store_bytes: int = 0  # the cache allocated at start (cache_tokens x bytes per token)
    relayouts: int = 0  # times the slots were re-cut for a new longest reservation


def kv_bytes_per_token(config, dtype_size: int) -> int:
    """Bytes of KV cache one token takes: 2 (K and V) x layers x KV heads x head dim x dtype size."""
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    heads = text.num_attention_heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    return 2 * text.num_hidden_layers * kv_heads * head_dim * dtype_size


def step_memory(config, dtype_size: int, rows: int, prefill_tokens: int) -> tuple[int, int]:
    """Working memory of one step beyond the KV cache, as (fixed bytes, bytes per cached token).

    Fixed: the larger of a decode step at `rows` rows and a prefill chunk of `prefill_tokens`: the
    activations of one layer per token (hidden states, attention projections and the MLP's three
    intermediate tensors) and the logits (one row of the vocabulary per row; prefill keeps only its
    last position). Per cached token: a prefill chunk after the first attends through a mask, so
    transformers' SDPA path expands the keys and values of the row's span to all query heads
    (`repeat_kv`), plus that mask's column. Decode steps group the query heads instead (no copy).
    """
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    heads = text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    vocab = text.vocab_size
    per_token = (4 * text.hidden_size + 3 * text.intermediate_size) * dtype_size
    decode = rows * (per_token + vocab * dtype_size)
    prefill = prefill_tokens * per_token + vocab * dtype_size
    return max(decode, prefill), 2 * heads * head_dim * dtype_size + prefill_tokens


def kv_budget_bytes(config, dtype_size: int, tokens: int, rows: int, prefill_tokens: int) -> int:
    """The `kv_cache_bytes` under which `ContinuousBatcher` holds `tokens` tokens of cache (a
    half-precision model on the CPU also counts KERNEL_CACHE_BYTES)."""
    fixed, per_token = step_memory(config, dtype_size, rows, prefill_tokens)
    return fixed + tokens * (kv_bytes_per_token(config, dtype_size) + per_token)


class SlotCache:
    """The running batch's KV cache: allocated once at `tokens` tokens, written in place.

    Each layer's keys (and values) are one flat buffer of tokens x KV heads x head dim, viewed as
    [slots, heads, width, dim] with slots x width <= tokens: slot r holds one request's tokens at
    columns [0, length). `cache` is a transformers `Cache` whose layers write the forward pass's
    new keys and values into the slots set by `decode()` or `prefill()` and return views (no copy).
    """

    def __init__(self, config, tokens: int, dtype, device):
        import torch
        from transformers import DynamicCache
        from transformers.cache_utils import DynamicLayer

        text = config.get_text_config(decoder=True)
        heads = text.num_attention_heads
        self.kv_heads = getattr(text, "num_key_value_heads", None) or heads
        self.head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
        self.tokens = max(1, tokens)
        # Zeroed, not empty: a column past a row's length is masked, but 0 x NaN would still be NaN.
        self.store = torch.zeros(
            (text.num_hidden_layers, 2, self.tokens * self.kv_heads * self.head_dim),
            dtype=dtype,
            device=device,
        )
        self._torch = torch
        self.width, self.slots, self.views = 0, 0, []
        self.layout(self.tokens)
        self._slot: int | None = None  # prefill: the slot written; decode: None
        self._start = 0  # prefill: first column written
        self._rows = None  # decode: arange(rows)
        self._columns = None  # decode: each row's column for its new token
        self._span = 0  # columns attention reads this step
        owner = self

        class _Layer(DynamicLayer):
            def __init__(self, index: int):
                super().__init__()
                self.index = index
                self.is_initialized = True

            def lazy_initialization(self, key_states, value_states) -> None:
                pass

            def update(self, key_states, value_states, *args, **kwargs):
                return owner._write(self.index, key_states, value_states)

            def get_seq_length(self) -> int:
                return owner._past

            def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
                return owner._past + query_length, 0

        self.cache = DynamicCache(config=config)
        self.cache.layers = [_Layer(i) for i in range(text.num_hidden_layers)]
        self._past = 0

    @property
    def nbytes(self) -> int:
        return self.store.numel() * self.store.element_size()

    def layout(self, width: int, keep_slots: int = 0, keep_columns: int = 0) -> None:
        """Cut the buffers into slots of `width` tokens, moving the first `keep_slots` slots'
        first `keep_columns` columns there (one layer's copy at a time)."""
        width = max(1, min(width, self.tokens))
        slots = self.tokens // width
        shape = (slots, self.kv_heads, width, self.head_dim)
        views = []
        for layer in range(self.store.shape[0]):
            pair = []
            for kv in range(2):
                new = self.store[layer, kv, : slots * width * self.kv_heads * self.head_dim]
                new = new.view(shape)
                if keep_slots and keep_columns:
                    # The old and new views share memory: copy out first.
                    kept = self.views[layer][kv][:keep_slots, :, :keep_columns].clone()
                    new[:keep_slots, :, :keep_columns] = kept
                pair.append(new)
            views.append(tuple(pair))
        self.views, self.width, self.slots = views, width, slots

    def move(self, source: int, target: int, columns: int) -> None:
        """Copy slot `source`'s first `columns` columns to slot `target`."""
        for pair in self.views:
            for view in pair:
                view[target, :, :columns] = view[source, :, :columns]

    def decode(self, lengths) -> None:
        """The next forward pass is a decode step of rows 0..n-1 holding `lengths` tokens."""
        torch = self._torch
        self._slot = None
        self._rows = torch.arange(len(lengths), device=self.store.device)
        self._columns = lengths.to(self.store.device)
        self._span = int(lengths.max()) + 1
        self._past = self._span - 1

    def prefill(self, slot: int, start: int) -> None:
        """The next forward pass writes one prompt chunk at columns `start`.. of `slot`."""
        self._slot, self._start, self._past = slot, start, start

    def _write(self, layer: int, keys, values):
        k, v = self.views[layer]
        if self._slot is None:
            rows, n = self._rows, len(self._rows)
            k[rows, :, self._columns] = keys[:, :, 0]
            v[rows, :, self._columns] = values[:, :, 0]
            return k[:n, :, : self._span], v[:n, :, : self._span]
        slot, start = self._slot, self._start
        end = start + keys.shape[2]
        k[slot, :, start:end] = keys[0]
        v[slot, :, start:end] = values[0]
        return k[slot : slot + 1, :, :end], v[slot : slot + 1, :, :end]


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
    slot: int | None = None  # its cache slot while it is prefilled (then its row's index)

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
        prefill_chunk_tokens: int = 256,
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
        parameter = next(model.parameters())
        self.device = parameter.device
        dtype_size = parameter.element_size()
        self.bytes_per_token = kv_bytes_per_token(config, dtype_size)
        self.stats = ContinuousStats()
        self._check_model()
        fixed, per_token = step_memory(
            config, dtype_size, self.max_batch_size, self.prefill_chunk_tokens
        )
        # A small budget takes shorter prefill chunks (more passes) rather than fewer tokens.
        while self.prefill_chunk_tokens > PREFILL_BUCKET and fixed > kv_cache_bytes // 4:
            self.prefill_chunk_tokens = max(PREFILL_BUCKET, self.prefill_chunk_tokens // 2)
            fixed, per_token = step_memory(
                config, dtype_size, self.max_batch_size, self.prefill_chunk_tokens
            )
        if self.device.type == "cpu" and parameter.dtype in (torch.bfloat16, torch.float16):
            # oneDNN's and ideep's compiled kernels for half-precision matmuls (see
            # bound_kernel_caches): measured 25-30 MB with the worker's arena for a 0.5B model.
            fixed += KERNEL_CACHE_BYTES
        self.step_bytes = fixed
        # The budget holds the cache and one step's working memory (see step_memory).
        self.cache_tokens = max(0, (kv_cache_bytes - fixed) // (self.bytes_per_token + per_token))
        if self.cache_tokens < 1:
            raise ModelLoadError(
                f"model {name!r}: kv_cache_mb ({kv_cache_bytes / 2**20:.1f} MiB) does not cover "
                f"one step's working memory ({fixed / 2**20:.1f} MiB at {self.max_batch_size} "
                "rows) and a token of cache; raise kv_cache_mb"
            )
        self._kv = SlotCache(config, self.cache_tokens, parameter.dtype, self.device)
        self.stats.kv_store_bytes = self._kv.nbytes
        self._eos = torch.tensor(sorted(self.eos_token_ids), dtype=torch.long, device=self.device)
        self._queue: FairQueue[_Request] = FairQueue()  # waiting for admission, calls in turn
        self._cond = threading.Condition()
        self._running = True
        self._prefilling: deque[_Request] = deque()  # admitted, prompt not yet all in cache
        self._rows: list[_Request] = []  # the running batch; row i is in cache slot i
        self._step_seconds = 0.1  # moving average, for retry_after_s
        self._trimmed = 0.0  # when _trim_now last ran
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
            self._queue.extend(current_call(), [request])
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
                self._fit_slots()
                try:
                    if self._prefilling:
                        self._prefill_chunk()
                    if self._rows:
                        self._decode_step()
                except Exception as exc:  # a model failure fails the requests it ran for
                    self._fail_running(exc)
                self._deliver()
                self._trim_now()
        self._shut_down()
        self._deliver()

    def _trim_now(self) -> None:
        """Give glibc's free memory back to the system, at most every TRIM_SECONDS.

        A step's activations and logits change size with the rows and the prompt lengths, so the
        worker thread's malloc arena holds freed chunks of every size it has seen (measured: tens
        of MB at 16 rows of a 0.5B model); trimming returns their pages, for about a millisecond.
        """
        now = time.monotonic()
        if _malloc_trim is not None and now - self._trimmed >= TRIM_SECONDS:
            self._trimmed = now
            _malloc_trim(0)

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
        """Admit waiting requests while rows and cache room allow, the calls taking turns (see
        fairness.py): the first request of the call whose turn it is joins."""
        self.stats.cancelled += len(self._queue.remove_if(lambda request: request.cancelled))
        while self._queue:
            call, waiting = self._queue.turns()[0]
            head = waiting[0]
            running = self._rows + list(self._prefilling)
            if len(running) >= self.max_batch_size:
                return
            longest = max([r.reserve for r in running] + [head.reserve])
            if running and (len(running) + 1) * longest > self.cache_tokens:
                return  # the request in turn waits for room, the others wait behind it
            reserved = (len(running) + 1) * longest * self.bytes_per_token
            self._queue.take(call, head)
            self._prefilling.append(head)
            self.stats.joined += 1
            self.stats.reserved_kv_bytes = reserved

    def _drop_cancelled(self) -> None:
        for request in [r for r in self._prefilling if r.cancelled]:
            self._prefilling.remove(request)
            request.slot = None
            self.stats.cancelled += 1
            self.stats.left += 1
        gone = [i for i, r in enumerate(self._rows) if r.cancelled]
        if gone:
            self.stats.cancelled += len(gone)
            self._remove_rows(gone)

    def _fit_slots(self) -> None:
        """Re-cut the slots when the running requests' longest reservation needs wider slots, or
        their number more slots, than the current cut (after admission)."""
        running = self._rows + list(self._prefilling)
        if not running:
            return
        kv = self._kv
        longest = max(r.reserve for r in running)
        if longest <= kv.width and len(running) <= kv.slots:
            return
        head = self._prefilling[0] if self._prefilling else None
        used = len(self._rows) + (1 if head and head.slot is not None else 0)
        held = [r.length - 1 for r in self._rows] + ([head.prefilled] if head else [])
        kv.layout(longest, used, max(held))
        self.stats.relayouts += 1

    def _prefill_chunk(self) -> None:
        torch = self._torch
        request = self._prefilling[0]
        if request.slot is None:
            request.slot = len(self._rows)  # the first free slot: rows hold 0..rows-1
        start = request.prefilled
        chunk = request.prompt_ids[start : start + self.prefill_chunk_tokens]
        # Padded at the end to a multiple of PREFILL_BUCKET (where the slot has room): oneDNN and
        # torch keep a compiled kernel per matrix shape for good, so a prompt length per shape
        # would grow the process by megabytes per new length. The causal mask keeps the padding
        # out of the real positions; its cache columns are past the row's length (masked, and
        # overwritten by the output).
        room = min(self.prefill_chunk_tokens, self._kv.width - start)
        padded = max(len(chunk), min(room, -(-len(chunk) // PREFILL_BUCKET) * PREFILL_BUCKET))
        ids = chunk + [chunk[-1]] * (padded - len(chunk))
        started = time.perf_counter()
        try:
            self._kv.prefill(request.slot, start)
            out = self.model(
                input_ids=torch.tensor([ids], device=self.device),
                position_ids=torch.arange(start, start + padded, device=self.device)[None],
                cache=self._kv.cache,
                use_cache=True,
                logits_to_keep=torch.tensor([len(chunk) - 1], device=self.device),
            )
        except Exception as exc:
            self._prefilling.popleft()
            request.slot = None
            self._fail([request], exc)
            return
        self.stats.prefills += 1
        self.stats.busy_seconds += time.perf_counter() - started
        request.prefilled += len(chunk)
        if request.prefilled < len(request.prompt_ids):
            self._account()
            return
        self._prefilling.popleft()
        token = self._pick(out.logits[:, -1, :], [request])[0]
        slot, request.slot = request.slot, None
        if self._append(request, token):
            self.stats.left += 1
            self._account()
            return
        assert slot == len(self._rows)  # _keep_head_next
        self._rows.append(request)
        self.stats.largest_batch = max(self.stats.largest_batch, len(self._rows))
        self._account()

    def _decode_step(self) -> None:
        torch = self._torch
        rows = self._rows
        started = time.perf_counter()
        input_ids = torch.tensor([[r.output_ids[-1]] for r in rows], device=self.device)
        held = torch.tensor([r.length - 1 for r in rows])  # tokens in each row's slot
        self._kv.decode(held)
        # Row i attends to its own columns 0..held[i] (the last one is written by this step).
        mask = torch.arange(self._kv._span)[None, :] <= held[:, None]
        out = self.model(
            input_ids=input_ids,
            attention_mask=mask.to(self.device),
            position_ids=held[:, None].to(self.device),
            cache=self._kv.cache,
            use_cache=True,
            logits_to_keep=1,
        )
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
        """Drop rows; the last row moves into each freed slot, so rows stay in slots 0..n-1."""
        rows = self._rows
        self.stats.left += len(set(indices))
        for i in sorted(set(indices), reverse=True):
            last = len(rows) - 1
            if i != last:
                self._kv.move(last, i, rows[last].length - 1)
                rows[i] = rows[last]
            rows.pop()
        self._keep_head_next()
        self._account()

    def _keep_head_next(self) -> None:
        """Keep the prefilling request's slot right after the rows (the slot it will join at), so
        that slots 0..running-1 are all a re-cut needs to keep."""
        head = self._prefilling[0] if self._prefilling else None
        if head is not None and head.slot is not None and head.slot > len(self._rows):
            self._kv.move(head.slot, len(self._rows), head.prefilled)
            head.slot = len(self._rows)

    def _account(self) -> None:
        stats = self.stats
        held = sum(r.length - 1 for r in self._rows) + sum(r.prefilled for r in self._prefilling)
        stats.kv_bytes = held * self.bytes_per_token
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
        rows, self._rows = self._rows, []
        self._keep_head_next()
        self._fail(rows, exc)
        self._account()

    def _shut_down(self) -> None:
        with self._cond:
            waiting = self._queue.drain()
        running = self._rows + list(self._prefilling) + waiting
        self._rows, self._prefilling = [], deque()
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
        self.cache_tokens = kv_cache_bytes // self.bytes_per_token
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
    if request.reserve > owner.cache_tokens:
        limit = owner.cache_tokens
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
