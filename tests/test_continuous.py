"""Continuous batching on its own: exactness against generate(), joins, stops, cancellation, limits.

Exactness runs on real models: ../shared/models/copy-chat (its answer is its input, so a mix-up
between rows shows as wrong text) and tiny random Qwen2 and Llama models built here (garbage text,
but any difference from `generate()` shows). Every wait is bounded.
"""

import asyncio
import time
from pathlib import Path

import pytest

from dragoman_server.continuous import (
    ContinuousBatcher,
    GenerationStream,
    kv_budget_bytes,
    make_continuous_batcher,
)
from dragoman_server.errors import InvalidArgument, ResourceExhausted, Unavailable
from dragoman_server.fairness import fair_share
from model_factory import build_tiny_llama, build_tiny_qwen2

COPY_CHAT = Path(__file__).resolve().parent.parent.parent / "shared" / "models" / "copy-chat"
LIMIT = 60  # seconds any single wait may take


def _load(path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)


@pytest.fixture(scope="module")
def copy_chat():
    if not COPY_CHAT.is_dir():
        pytest.skip("../shared/models/copy-chat is missing")
    return _load(COPY_CHAT)


@pytest.fixture(scope="module", params=["qwen2", "llama"])
def random_model(request, tmp_path_factory):
    build = build_tiny_qwen2 if request.param == "qwen2" else build_tiny_llama
    return _load(build(tmp_path_factory.mktemp(request.param)))


def _prompt(tokenizer, text: str) -> list[int]:
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True
    )
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


def _generate(model, tokenizer, ids, max_new: int, min_new: int = 0) -> str:
    """The reference: transformers' own greedy generate() on the prompt alone."""
    import torch

    with torch.inference_mode():
        out = model.generate(
            torch.tensor([ids]), max_new_tokens=max_new, min_new_tokens=min_new, do_sample=False
        )
    return tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True)


def _batcher(model, tokenizer, **kw) -> ContinuousBatcher:
    kw.setdefault("max_batch_size", 8)
    kw.setdefault("kv_cache_bytes", 64 * 2**20)
    eos = {tokenizer.eos_token_id, model.generation_config.eos_token_id} - {None}
    return ContinuousBatcher(model, tokenizer, name="m", eos_token_ids=eos, **kw)


async def _collect(stream: GenerationStream) -> tuple[str, list[str]]:
    deltas = [d async for d in stream]
    return (await stream.result()).text, deltas


async def _eventually(check, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


COPY_TEXTS = [
    "O presidente chegou a Lisboa ontem.",
    "Hello world, this is a test of the copy model.",
    "A inflação caiu 2,5% em março.",
    "Olá! 🙂 «Bom dia»",
    "The summit ended without agreement.",
]


def test_copy_chat_matches_generate_with_staggered_joins(copy_chat):
    model, tok = copy_chat
    prompts = [_prompt(tok, t) for t in COPY_TEXTS]
    reference = [_generate(model, tok, p, 60) for p in prompts]
    copied = [t for t, r in zip(COPY_TEXTS, reference, strict=True) if t == r]
    assert len(copied) >= 4, reference  # the instrument copies these; otherwise nothing is shown

    async def main():
        batcher = _batcher(model, tok)
        try:
            streams = []
            for p in prompts:  # each joins a batch already running, at a different step
                streams.append(batcher.submit(p, max_new_tokens=60))
                await asyncio.sleep(0.005)
            results = await asyncio.wait_for(asyncio.gather(*map(_collect, streams)), LIMIT)
            return results, batcher.stats
        finally:
            batcher.close()

    results, stats = asyncio.run(main())
    for (text, deltas), ref in zip(results, reference, strict=True):
        assert text == ref
        assert "".join(deltas) == text
    assert stats.largest_batch >= 2  # they really ran together
    assert stats.joined == stats.left == len(prompts)


def test_random_models_match_generate_token_for_token(random_model):
    """Prompts of different lengths (padding differs per row), own budgets, joins mid-run."""
    model, tok = random_model
    texts = [
        "Olá",
        "A long sentence about the summit in Brussels and the budget.",
        "Shares fell 7.2%.",
    ]
    jobs = [(t, n) for t in texts for n in (3, 17, 40)]
    prompts = [_prompt(tok, t) for t, _ in jobs]
    # Forced lengths (EOS held back) for even jobs, free ones for odd: both must match.
    mins = [n if i % 2 == 0 else 0 for i, (_, n) in enumerate(jobs)]
    reference = [
        _generate(model, tok, p, n, m) for p, (_, n), m in zip(prompts, jobs, mins, strict=True)
    ]

    async def main():
        batcher = _batcher(model, tok, max_batch_size=5)
        try:
            calls = list(zip(prompts, [n for _, n in jobs], mins, strict=True))
            first = [batcher.submit(p, max_new_tokens=n, min_new_tokens=m) for p, n, m in calls[:3]]
            # Wait until the first requests are decoding, then add the rest one by one.
            await _eventually(lambda: batcher.stats.steps >= 2)
            rest = []
            for p, n, m in calls[3:]:
                rest.append(batcher.submit(p, max_new_tokens=n, min_new_tokens=m))
                await asyncio.sleep(0.005)
            results = await asyncio.wait_for(asyncio.gather(*map(_collect, first + rest)), LIMIT)
            return results, batcher.stats
        finally:
            batcher.close()

    results, stats = asyncio.run(main())
    assert [text for text, _ in results] == reference
    for text, deltas in results:
        assert "".join(deltas) == text
    # They shared steps (how many at once depends on timing: short ones may end before the last
    # joins): more decoded tokens than steps means some steps ran several rows.
    assert stats.largest_batch >= 2 and stats.tokens - stats.prefills > stats.steps
    assert stats.kv_bytes == 0 and stats.reserved_kv_bytes == 0  # everything freed at the end


def test_stop_strings_end_the_request_and_never_reach_the_caller(copy_chat):
    model, tok = copy_chat
    text = "Hello world, this is a test of the copy model."
    prompt = _prompt(tok, text)
    assert _generate(model, tok, prompt, 60) == text

    async def run(stops):
        batcher = _batcher(model, tok)
        try:
            stream = batcher.submit(prompt, max_new_tokens=60, stop_strings=stops)
            result_text, deltas = await asyncio.wait_for(_collect(stream), LIMIT)
            return result_text, deltas, (await stream.result()).output_tokens
        finally:
            batcher.close()

    # A stop string spanning several tokens; the earlier of two stop strings wins.
    got, deltas, used = asyncio.run(run(("copy model", "test")))
    assert got == "Hello world, this is a "
    assert "".join(deltas) == got and not any("t" == d.strip()[-1:] for d in deltas[-1:])
    assert used < len(tok(text)["input_ids"])  # it stopped early rather than trimming afterwards
    assert asyncio.run(run(("absent",)))[0] == text


def test_cancelling_the_awaiting_task_frees_the_slot_and_its_cache(random_model):
    model, tok = random_model
    prompt = _prompt(tok, "Olá")

    async def main():
        batcher = _batcher(model, tok, max_batch_size=1)
        try:
            long = batcher.submit(prompt, max_new_tokens=240, min_new_tokens=240)
            waiting = batcher.submit(prompt, max_new_tokens=5, min_new_tokens=5)
            task = asyncio.ensure_future(long.result())
            await _eventually(lambda: batcher.stats.steps >= 3)
            assert batcher.stats.kv_bytes > 0 and batcher.queue_depth == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            # The one slot goes to the waiting request, before the long one could have ended.
            done = await asyncio.wait_for(waiting.result(), LIMIT)
            await _eventually(lambda: batcher.stats.kv_bytes == 0)
            return done, batcher.stats
        finally:
            batcher.close()

    done, stats = asyncio.run(main())
    assert done.output_tokens == 5
    assert stats.cancelled == 1 and stats.left == 2 and stats.reserved_kv_bytes == 0
    assert stats.steps < 239 + 4  # fewer than the long one run to its end, then the short one


def test_calls_take_turns_for_the_rows(random_model):
    """One row: a call queues five requests, then another call one. The second call's request
    runs second (its turn), not after the first call's five."""
    model, tok = random_model
    prompt = _prompt(tok, "Olá")
    order: list[str] = []

    async def run(stream, name):
        await stream.result()
        order.append(name)

    async def main():
        batcher = _batcher(model, tok, max_batch_size=1, max_queue_size=8)
        try:
            with fair_share():
                big = [batcher.submit(prompt, max_new_tokens=4, min_new_tokens=4) for _ in range(5)]
            with fair_share():
                small = batcher.submit(prompt, max_new_tokens=4, min_new_tokens=4)
            await asyncio.wait_for(
                asyncio.gather(
                    *(run(s, f"big-{k}") for k, s in enumerate(big)), run(small, "small")
                ),
                LIMIT,
            )
        finally:
            batcher.close()

    asyncio.run(main())
    assert order == ["big-0", "small", "big-1", "big-2", "big-3", "big-4"]


def test_the_cache_is_allocated_once_and_written_in_place(random_model):
    """Rows of different reservations join, leave, and one is cancelled mid-batch (the last row
    moves into its slot): the cache keeps its one buffer, every step reads views of it, the
    others still match generate(), and the cancelled slot is taken by a later request."""
    model, tok = random_model
    texts = ["Olá", "A long sentence about the summit in Brussels and the budget.", "7.2%"]
    jobs = [(t, n) for n in (5, 30, 12) for t in texts]  # nine requests, reserves differ
    prompts = [_prompt(tok, t) for t, _ in jobs]
    reference = [_generate(model, tok, p, n, n) for p, (_, n) in zip(prompts, jobs, strict=True)]
    seen = []

    async def main():
        batcher = _batcher(model, tok, max_batch_size=4)
        store = batcher._kv.store
        start, end = store.data_ptr(), store.data_ptr() + store.numel() * store.element_size()

        def observe(name, rows, waiting, seconds):  # on the worker thread, after each step
            views = [v for pair in batcher._kv.views for v in pair]
            inside = all(start <= v.data_ptr() < end for v in views)
            seen.append((batcher._kv.store.data_ptr(), batcher._kv.store.numel(), inside, rows))

        batcher.observer = observe
        try:
            victim = batcher.submit(prompts[0], max_new_tokens=200, min_new_tokens=200)
            streams = [batcher.submit(p, max_new_tokens=n, min_new_tokens=n)
                       for p, (_, n) in zip(prompts[:2], jobs[:2], strict=True)]  # fmt: skip
            await _eventually(lambda: batcher.stats.steps >= 3)
            victim.cancel()  # slot 0 of three rows: the last row moves into it
            for p, (_, n) in zip(prompts[2:], jobs[2:], strict=True):
                streams.append(batcher.submit(p, max_new_tokens=n, min_new_tokens=n))
                await asyncio.sleep(0.005)
            results = await asyncio.wait_for(asyncio.gather(*map(_collect, streams)), LIMIT)
            await _eventually(lambda: batcher.active == 0)
            return [text for text, _ in results], batcher.stats, (start, store.numel())
        finally:
            batcher.close()

    texts_out, stats, (ptr, numel) = asyncio.run(main())
    assert texts_out == reference and stats.cancelled == 1
    assert seen and all(p == ptr and n == numel and inside for p, n, inside, _ in seen)
    assert max(rows for *_, rows in seen) == 4  # the cancelled slot was used again
    assert stats.relayouts >= 1  # slots were re-cut as the longest reservation changed
    assert stats.kv_bytes == 0 and stats.kv_store_bytes == numel * 4


def test_a_consumer_that_stops_reading_cancels_its_request(random_model):
    model, tok = random_model

    async def main():
        batcher = _batcher(model, tok)
        try:
            stream = batcher.submit(_prompt(tok, "Olá"), max_new_tokens=240, min_new_tokens=240)
            async for _ in stream:
                break  # the consumer leaves after the first delta
            await _eventually(lambda: batcher.stats.left == 1)
            with pytest.raises(asyncio.CancelledError):
                await stream.result()
            return batcher.stats
        finally:
            batcher.close()

    stats = asyncio.run(main())
    assert stats.cancelled == 1 and stats.kv_bytes == 0 and stats.steps < 239


def test_kv_budget_bounds_the_batch_and_a_full_queue_is_refused(random_model):
    model, tok = random_model
    prompt = _prompt(tok, "Olá")
    new = 150  # long enough that the first two are still running when the others arrive
    reserve = len(prompt) + new
    # Room for two such requests, not three, beside one step's working memory.
    budget = kv_budget_bytes(model.config, 4, 2 * reserve, rows=8, prefill_tokens=32)

    async def main():
        batcher = _batcher(
            model, tok, kv_cache_bytes=budget, max_queue_size=2, prefill_chunk_tokens=32
        )
        try:
            streams = [
                batcher.submit(prompt, max_new_tokens=new, min_new_tokens=new) for _ in range(2)
            ]
            await _eventually(lambda: batcher.stats.joined == 2)
            streams += [
                batcher.submit(prompt, max_new_tokens=new, min_new_tokens=new) for _ in range(2)
            ]
            assert batcher.queue_depth == 2  # no room in the cache for a third row
            with pytest.raises(ResourceExhausted) as full:
                batcher.submit(prompt, max_new_tokens=new)
            results = await asyncio.wait_for(asyncio.gather(*(s.result() for s in streams)), LIMIT)
            return full.value, results, batcher.stats
        finally:
            batcher.close()

    full, results, stats = asyncio.run(main())
    assert full.reason == "KV_CACHE_FULL" and full.retry_after_s > 0
    assert len({r.text for r in results}) == 1 and all(r.output_tokens == new for r in results)
    assert stats.largest_batch == 2
    assert 0 < stats.peak_kv_bytes <= budget
    assert stats.refused == 1


def test_requests_that_can_never_fit_are_invalid(random_model):
    model, tok = random_model
    prompt = _prompt(tok, "Olá")
    budget = kv_budget_bytes(model.config, 4, len(prompt) + 10, rows=8, prefill_tokens=32)

    async def main():
        small = _batcher(model, tok, kv_cache_bytes=budget, prefill_chunk_tokens=32)
        try:
            with pytest.raises(InvalidArgument) as cache:
                small.submit(prompt, max_new_tokens=11)
            with pytest.raises(InvalidArgument) as window:
                small.submit(prompt, max_new_tokens=model.config.max_position_embeddings)
            with pytest.raises(InvalidArgument) as vocab:
                small.submit([model.config.vocab_size + 5], max_new_tokens=1)
            ok = await asyncio.wait_for(small.submit(prompt, max_new_tokens=10).result(), LIMIT)
            return cache.value, window.value, vocab.value, ok
        finally:
            small.close()

    cache, window, vocab, ok = asyncio.run(main())
    assert cache.reason == window.reason == "SEGMENT_TOO_LONG"
    assert vocab.reason == "TOKEN_ID_INVALID"
    assert ok.input_tokens == len(prompt)


def test_close_fails_running_and_queued_requests_and_refuses_new_ones(random_model):
    model, tok = random_model
    prompt = _prompt(tok, "Olá")

    async def main():
        batcher = _batcher(model, tok, max_batch_size=1)
        running = batcher.submit(prompt, max_new_tokens=200, min_new_tokens=200)
        queued = batcher.submit(prompt, max_new_tokens=5)
        await _eventually(lambda: batcher.stats.steps >= 1)
        await asyncio.to_thread(batcher.close)
        errors = []
        for stream in (running, queued):
            with pytest.raises(Unavailable) as info:
                await asyncio.wait_for(stream.result(), LIMIT)
            errors.append(info.value.reason)
        with pytest.raises(Unavailable) as late:
            batcher.submit(prompt, max_new_tokens=5)
        return errors, late.value.reason, batcher._thread.is_alive()

    errors, late, alive = asyncio.run(main())
    assert errors == ["SHUTTING_DOWN", "SHUTTING_DOWN"] and late == "SHUTTING_DOWN"
    assert not alive


def test_generation_never_blocks_the_event_loop(random_model):
    model, tok = random_model
    prompt = _prompt(tok, "A long sentence about the summit in Brussels and the budget.")

    async def main():
        batcher = _batcher(model, tok)
        gaps, last = [], time.perf_counter()

        async def tick():
            nonlocal last
            while True:
                await asyncio.sleep(0.005)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        ticker = asyncio.ensure_future(tick())
        try:
            streams = [
                batcher.submit(prompt, max_new_tokens=60, min_new_tokens=60) for _ in range(6)
            ]
            await asyncio.wait_for(asyncio.gather(*map(_collect, streams)), LIMIT)
        finally:
            ticker.cancel()
            batcher.close()
        return max(gaps)

    assert asyncio.run(main()) < 0.25


# ------------------------------------------------------------------ transformers' own (paged)
def _transformers_batcher(model, tokenizer, **kw):
    kw.setdefault("max_batch_size", 8)
    kw.setdefault("kv_cache_bytes", 16 * 2**20)
    eos = {tokenizer.eos_token_id, model.generation_config.eos_token_id} - {None}
    return make_continuous_batcher(
        model, tokenizer, implementation="transformers", name="m", eos_token_ids=eos, **kw
    )


def test_transformers_implementation_matches_generate_and_stops(copy_chat):
    """The same interface over transformers' paged continuous batching: same texts as generate()
    for staggered requests, stop strings cut, deltas add up to the result."""
    model, tok = copy_chat
    prompts = [_prompt(tok, t) for t in COPY_TEXTS]
    reference = [_generate(model, tok, p, 40) for p in prompts]

    async def main():
        batcher = _transformers_batcher(model, tok)
        try:
            streams = []
            for p in prompts:
                streams.append(batcher.submit(p, max_new_tokens=40))
                await asyncio.sleep(0.02)
            stopped = batcher.submit(prompts[1], max_new_tokens=40, stop_strings=("test",))
            results = await asyncio.wait_for(
                asyncio.gather(*map(_collect, streams + [stopped])), LIMIT
            )
            return results, batcher.stats
        finally:
            batcher.close()

    results, stats = asyncio.run(main())
    for text, deltas in results:
        assert "".join(deltas) == text
    assert [text for text, _ in results[:-1]] == reference
    assert results[-1][0] == reference[1][: reference[1].index("test")]
    assert stats.joined == stats.left == len(prompts) + 1


def test_transformers_implementation_cancels_and_shuts_down(random_model):
    model, tok = random_model
    prompt = _prompt(tok, "Olá")

    async def main():
        batcher = _transformers_batcher(model, tok)
        long = batcher.submit(prompt, max_new_tokens=200, min_new_tokens=200)
        task = asyncio.ensure_future(long.result())
        await _eventually(lambda: batcher.stats.tokens >= 3)
        task.cancel()
        await _eventually(lambda: batcher.stats.cancelled == 1)
        forced = await asyncio.wait_for(
            batcher.submit(prompt, max_new_tokens=12, min_new_tokens=12).result(), LIMIT
        )
        running = batcher.submit(prompt, max_new_tokens=200, min_new_tokens=200)
        await _eventually(lambda: batcher.stats.tokens >= 20)
        await asyncio.to_thread(batcher.close)
        with pytest.raises(Unavailable) as closed:
            await asyncio.wait_for(running.result(), LIMIT)
        with pytest.raises(Unavailable):
            batcher.submit(prompt, max_new_tokens=5)
        return forced, closed.value.reason

    forced, reason = asyncio.run(main())
    assert forced.output_tokens == 12 and forced.text == _generate(model, tok, prompt, 12, 12)
    assert reason == "SHUTTING_DOWN"
