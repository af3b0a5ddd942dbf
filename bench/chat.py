"""Instruction-model benchmark: naive generate() vs static batching vs continuous batching.

    python -m bench chat              # about 17 minutes on 2 cores
    python -m bench chat --quick      # short windows, to check that it works
    python -m bench chat --window 240 --dtype bfloat16 --kv-cache-mb 128

One run, one model, one seeded workload:
  a  naive: transformers generate(), one request at a time, in-process
  b  static batching: today's `Batcher` (service/dragoman_server/batcher.py) in front of an engine
     whose generate() runs model.generate on the left-padded batch, 16 closed-loop clients; a batch
     runs until its longest member ends (rows that ended earlier are generated and thrown away,
     as they would be after their EOS)
  c  continuous batching: `ContinuousBatcher`, 16 closed-loop clients
  d  the same through `TransformersContinuousBatcher` (transformers' paged continuous batching)
  e  CTranslate2: the same weights converted (int8 by default) and run by `ctranslate2.Generator`
     behind the same `Batcher` as b, 16 closed-loop clients. CTranslate2 has no iteration-level
     batching (its KV cache is not exposed, so a request cannot join a running batch), but it drops
     a row from the running batch when the step callback returns True for it: each row stops at
     its own length, so a batch costs its rows' useful tokens (not 16 x its longest, as in b),
     yet returns only when its longest row ends. One inter-op worker with `--threads` intra-op
     threads: the same CPU as the torch modes.
The model is a random Qwen2 with Qwen2.5-0.5B's dimensions (hidden 896, 24 layers, 14 heads, 2 KV
heads, intermediate 4864, vocab 151,936; tied embeddings), with copy-chat's byte-level BPE tokenizer
and chat template, its vocabulary padded to 151,936. Prompts are chat-templated news sentences
(about 40 tokens). Output lengths are drawn log-uniformly from 16 to 256 tokens (a quarter are at
most 32: the "short" requests) and forced (EOS held back until then).

Each mode runs for a fixed window of wall-clock time (the static batches of b last minutes each, so
a fixed request count would not fit a bounded run). Output tokens/s counts the useful tokens the
model produced inside the window (rows past their own length in a static batch are not useful),
in-flight requests included, so all three modes are counted alike. Latency percentiles are over the
requests that completed in the window. Tokens per CPU-second is given too: on a shared machine it
moves less than wall-clock figures. Writes bench/results/chat-latest.json.
"""

import argparse
import asyncio
import json
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
COPY_CHAT = ROOT.parent / "shared" / "models" / "copy-chat"
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

VOCAB = 151936
CLIENTS = 16
SHORT = 32  # "short" requests: at most this many output tokens


def build_tokenizer(path: Path):
    """copy-chat's byte-level BPE and chat template, vocabulary padded to the model's."""
    from transformers import AutoTokenizer

    from .run import _pad_vocab

    path.mkdir(parents=True, exist_ok=True)
    for f in COPY_CHAT.iterdir():
        if f.name.startswith("tokenizer") or f.name == "chat_template.jinja":
            shutil.copy(f, path / f.name)
    tok = json.loads((path / "tokenizer.json").read_text())
    taken = len(tok["model"]["vocab"]) + len(tok.get("added_tokens", []))
    _pad_vocab(tok["model"]["vocab"], VOCAB - (taken - len(tok["model"]["vocab"])), "\u0120")
    (path / "tokenizer.json").write_text(json.dumps(tok))
    tc = json.loads((path / "tokenizer_config.json").read_text())
    tc["model_max_length"] = 32768
    (path / "tokenizer_config.json").write_text(json.dumps(tc))
    return AutoTokenizer.from_pretrained(path)


def build_model(tokenizer, dtype: str):
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    config = Qwen2Config(
        vocab_size=VOCAB, hidden_size=896, num_hidden_layers=24, num_attention_heads=14,
        num_key_value_heads=2, intermediate_size=4864, max_position_embeddings=32768,
        tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
    )  # fmt: skip
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype)).eval()


def workload(tokenizer, n: int, seed: int = 0) -> list[tuple[list[int], int]]:
    """(prompt ids, forced output length) per request; lengths log-uniform in [16, 256]."""
    from model_factory import NEWS_CORPUS

    rng = random.Random(seed)
    out = []
    for i in range(n):
        text = f"{NEWS_CORPUS[i % len(NEWS_CORPUS)]} ({i})"
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True
        )
        ids = list(ids["input_ids"] if hasattr(ids, "keys") else ids)
        out.append((ids, round(math.exp(rng.uniform(math.log(16), math.log(256))))))
    return out


class _Counter:
    """A StoppingCriteria for model.generate: counts useful tokens, stops at the deadline."""

    def __init__(self, lengths: list[int], deadline: float, should_stop=None):
        self.lengths, self.deadline, self.should_stop = lengths, deadline, should_stop
        self.step = 0
        self.useful = 0

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        self.step += 1
        self.useful += sum(1 for n in self.lengths if n >= self.step)
        stop = time.monotonic() >= self.deadline or bool(self.should_stop and self.should_stop())
        return torch.full((input_ids.shape[0],), stop, dtype=torch.bool)


def _percentiles(latencies: list[float]) -> dict:
    if not latencies:
        return {"n": 0}
    xs = sorted(latencies)
    p95 = xs[min(len(xs) - 1, math.ceil(0.95 * len(xs)) - 1)]
    return {"n": len(xs), "p50": statistics.median(xs), "p95": p95}


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def naive(model, tokenizer, requests, window: float) -> dict:
    import torch

    deadline = time.monotonic() + window
    started, cpu = time.monotonic(), _cpu_seconds()
    useful, done, short = 0, 0, []
    with torch.inference_mode():
        for ids, n in requests:
            if time.monotonic() >= deadline:
                break
            counter = _Counter([n], deadline)
            t0 = time.monotonic()
            model.generate(
                torch.tensor([ids]), max_new_tokens=n, min_new_tokens=n, do_sample=False,
                stopping_criteria=[counter], pad_token_id=tokenizer.pad_token_id,
            )  # fmt: skip
            useful += counter.useful
            if counter.step >= n:
                done += 1
                if n <= SHORT:
                    short.append(time.monotonic() - t0)
    elapsed = time.monotonic() - started
    return {
        "tokens": useful, "seconds": elapsed, "tokens_per_s": useful / elapsed,
        "tokens_per_cpu_s": useful / max(1e-9, _cpu_seconds() - cpu), "completed": done,
        "short_latency": _percentiles(short),
    }  # fmt: skip


class StaticEngine:
    """An Engine whose generate() runs model.generate on the left-padded batch; a 'text' is the
    index of a request in the workload. Rows end at their own length (as at their EOS) but the
    batch runs until its longest row ends."""

    name = task = "static"
    device = "cpu"
    backend = "torch"

    def __init__(self, model, tokenizer, requests, deadline: float):
        self.model, self.tokenizer, self.requests, self.deadline = (
            model,
            tokenizer,
            requests,
            deadline,
        )
        self.useful = 0

    @property
    def max_input_tokens(self) -> int:
        return 32768

    def count_tokens(self, texts):
        return [len(self.requests[int(t)][0]) for t in texts]

    def generate(self, texts, params, should_stop=None):
        import torch

        from dragoman_server.engines.base import Generated

        rows = [self.requests[int(t)] for t in texts]
        width = max(len(ids) for ids, _ in rows)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids, _ in rows])
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids, _ in rows])
        longest = max(n for _, n in rows)
        counter = _Counter([n for _, n in rows], self.deadline, should_stop)
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids, attention_mask=mask, max_new_tokens=longest,
                min_new_tokens=longest, do_sample=False, stopping_criteria=[counter],
                pad_token_id=pad,
            )  # fmt: skip
        self.useful += counter.useful
        return [
            Generated(
                self.tokenizer.decode(out[i, width : width + n], skip_special_tokens=True),
                len(ids),
                min(n, counter.step),
            )
            for i, (ids, n) in enumerate(rows)
        ]


class CT2Engine(StaticEngine):
    """StaticEngine's contract run by `ctranslate2.Generator.generate_batch`: EOS held back until
    the batch's longest row (min_length), each row stopped at its own length by the callback."""

    backend = "ctranslate2"

    def __init__(self, generator, tokenizer, requests, deadline: float):
        super().__init__(None, tokenizer, requests, deadline)
        self.generator = generator
        self.steps = 0  # decoding steps run, over all batches
        self.tokens = {}  # request index -> prompt as tokens, converted once

    def generate(self, texts, params, should_stop=None):
        from dragoman_server.engines.base import Generated

        indices = [int(t) for t in texts]
        for i in indices:
            if i not in self.tokens:
                self.tokens[i] = self.tokenizer.convert_ids_to_tokens(self.requests[i][0])
        lengths = [self.requests[i][1] for i in indices]
        produced = [0] * len(indices)
        stopped = False

        def step(result) -> bool:
            nonlocal stopped
            if not stopped and (
                time.monotonic() >= self.deadline or (should_stop and should_stop())
            ):
                stopped = True
            if stopped:
                return True
            produced[result.batch_id] += 1
            return produced[result.batch_id] >= lengths[result.batch_id]

        longest = max(lengths)
        results = self.generator.generate_batch(
            [self.tokens[i] for i in indices], max_length=longest, min_length=longest,
            include_prompt_in_result=False, callback=step,
        )  # fmt: skip
        self.useful += sum(produced)
        self.steps += max(produced)
        return [
            Generated(
                self.tokenizer.decode(r.sequences_ids[0], skip_special_tokens=True),
                len(self.requests[i][0]),
                n,
            )
            for r, i, n in zip(results, indices, produced, strict=True)
        ]


def convert_ct2(model, tokenizer, compute_type: str, directory: Path) -> Path:
    """The benchmark's model, saved and converted by CTranslate2's TransformersConverter."""
    import warnings

    import ctranslate2

    hf = directory / "hf"
    model.save_pretrained(hf)
    tokenizer.save_pretrained(hf)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converter = ctranslate2.converters.TransformersConverter(str(hf))
        quantization = None if compute_type == "float32" else compute_type
        converter.convert(str(directory / "ct2"), quantization=quantization, force=True)
    shutil.rmtree(hf)
    return directory / "ct2"


def ctranslate2_mode(generator, tokenizer, requests, window: float) -> dict:
    started = time.monotonic()
    engine = CT2Engine(generator, tokenizer, requests, started + window)
    result = _behind_the_batcher(engine, requests, window, started)
    return {**result, "mean_rows_per_step": engine.useful / max(1, engine.steps)}


async def _clients(call, requests, window: float) -> tuple[list[float], int]:
    """16 closed-loop clients taking the next request in order until the window ends."""
    deadline = time.monotonic() + window
    serial = iter(range(len(requests)))
    short, completed = [], 0

    async def client():
        nonlocal completed
        for i in serial:
            if time.monotonic() >= deadline:
                return
            t0 = time.monotonic()
            ok = await call(i)
            if ok:
                completed += 1
                if requests[i][1] <= SHORT:
                    short.append(time.monotonic() - t0)

    tasks = [asyncio.ensure_future(client()) for _ in range(CLIENTS)]
    await asyncio.sleep(window)
    for t in tasks:
        t.cancel()  # continuous: cancelling the caller frees its row at the next step
    await asyncio.gather(*tasks, return_exceptions=True)
    return short, completed


def static(model, tokenizer, requests, window: float) -> dict:
    started = time.monotonic()
    engine = StaticEngine(model, tokenizer, requests, started + window)
    return _behind_the_batcher(engine, requests, window, started)


def _behind_the_batcher(engine, requests, window: float, started: float) -> dict:
    """16 closed-loop clients through today's `Batcher` in front of `engine` (modes b and e)."""
    from dragoman_server.batcher import Batcher
    from dragoman_server.engines.base import GenerationParams

    rss = _RssSampler()
    cpu = _cpu_seconds()
    batcher = Batcher(engine, max_batch_size=CLIENTS, max_batch_tokens=10**6, max_queue_delay_ms=5)
    params = GenerationParams()

    async def call(i):
        r = (await batcher.generate([str(i)], [len(requests[i][0])], params))[0]
        return r.output_tokens >= requests[i][1]

    async def run():
        result = await _clients(call, requests, window)
        # Waits for the batch in progress (stopped at the deadline) while the loop still runs.
        await asyncio.to_thread(batcher.close, 600)
        return result

    short, completed = asyncio.run(run())
    elapsed = time.monotonic() - started
    rss.stop()
    return {
        "tokens": engine.useful, "seconds": elapsed, "tokens_per_s": engine.useful / elapsed,
        "tokens_per_cpu_s": engine.useful / max(1e-9, _cpu_seconds() - cpu),
        "completed": completed, "batches": batcher.stats.batches,
        "peak_rss_mb": rss.peak / 2**20, "short_latency": _percentiles(short),
    }  # fmt: skip


def continuous(
    model, tokenizer, requests, window: float, kv_cache_bytes: int, implementation="dragoman"
) -> dict:
    from dragoman_server.continuous import make_continuous_batcher

    rss = _RssSampler()
    started, cpu = time.monotonic(), _cpu_seconds()
    batcher = make_continuous_batcher(
        model, tokenizer, implementation=implementation, max_batch_size=CLIENTS,
        kv_cache_bytes=kv_cache_bytes, name="chat", eos_token_ids={tokenizer.eos_token_id},
        max_queue_size=4 * CLIENTS,
    )  # fmt: skip

    async def call(i):
        ids, n = requests[i]
        r = await batcher.submit(ids, max_new_tokens=n, min_new_tokens=n).result()
        return r.output_tokens >= n

    async def run():
        result = await _clients(call, requests, window)
        tokens = batcher.stats.tokens
        await asyncio.to_thread(batcher.close, 60)  # while the loop still runs
        return result, tokens

    (short, completed), tokens = asyncio.run(run())
    elapsed = time.monotonic() - started
    rss.stop()
    s = batcher.stats
    return {
        "tokens": tokens, "seconds": elapsed, "tokens_per_s": tokens / elapsed,
        "tokens_per_cpu_s": tokens / max(1e-9, _cpu_seconds() - cpu), "completed": completed,
        "steps": s.steps, "mean_rows_per_step": (s.tokens - s.joined) / max(1, s.steps or 1),
        "peak_kv_mb": s.peak_kv_bytes / 2**20, "kv_budget_mb": kv_cache_bytes / 2**20,
        "kv_store_mb": s.kv_store_bytes / 2**20,
        "step_memory_mb": getattr(batcher, "step_bytes", 0) / 2**20,
        "cache_tokens": batcher.cache_tokens, "relayouts": s.relayouts,
        "peak_rss_mb": rss.peak / 2**20, "short_latency": _percentiles(short),
    }  # fmt: skip


class _RssSampler:
    def __init__(self):
        self.peak, self._running = _rss(), True
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while self._running:
            self.peak = max(self.peak, _rss())
            time.sleep(0.05)

    def stop(self):
        self._running = False
        self._thread.join()


def _settled_rss() -> int:
    """RSS once garbage is collected and glibc has returned its free pages: the floor that a
    server with the model loaded sits at, measured the same way each time."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    return _rss()


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _on_a_thread(function, *args):
    """Run `function` on a fresh thread, as the server and the batchers run their models."""
    box = []
    thread = threading.Thread(target=lambda: box.append(function(*args)))
    thread.start()
    thread.join()
    return box[0]


def _warm_up(model, tokenizer, requests) -> None:
    import torch

    with torch.inference_mode():
        for b in (1, 4, CLIENTS):
            ids = torch.tensor([requests[0][0]] * b)
            model.generate(ids, max_new_tokens=3, min_new_tokens=3, do_sample=False,
                           pad_token_id=tokenizer.pad_token_id)  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench chat", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="30 s windows")
    parser.add_argument("--window", type=float, default=240.0, help="seconds for b and c")
    parser.add_argument("--naive-window", type=float, default=90.0, help="seconds for a")
    parser.add_argument(
        "--transformers-window", type=float, default=120.0,
        help="seconds for d, transformers' own continuous batching (0: skip)",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch intra-op threads (OMP_NUM_THREADS) for every mode; 0: torch's default",
    )  # fmt: skip
    parser.add_argument(
        "--ct2-window", type=float, default=240.0,
        help="seconds for e, CTranslate2 behind the batcher (0: skip)",
    )  # fmt: skip
    parser.add_argument(
        "--ct2-compute-type", default="int8",
        help="CTranslate2 compute type for e (int8, int8_float32, int16, float32...)",
    )  # fmt: skip
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--kv-cache-mb", type=float, default=128.0)
    parser.add_argument("--requests", type=int, default=400, help="workload size (upper bound)")
    args = parser.parse_args(argv)
    if args.quick:
        args.window, args.naive_window, args.transformers_window = 30.0, 20.0, 20.0
        args.ct2_window = min(args.ct2_window, 30.0)
    if args.threads:
        # Before torch loads, so that every thread (main, batchers' workers) gets the same pool.
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(args.threads)
    from dragoman_server.continuous import bound_kernel_caches

    bound_kernel_caches()  # as the server does, before torch runs anything

    def log(*a):
        print(f"[{time.strftime('%H:%M:%S')}]", *a, file=sys.stderr, flush=True)

    base_rss = _rss()
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = build_tokenizer(Path(tmp) / "tok")
    log("building the model", args.dtype)
    model = build_model(tokenizer, args.dtype)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    requests = workload(tokenizer, args.requests)
    _on_a_thread(_warm_up, model, tokenizer, requests)
    loaded_rss = _settled_rss()
    out = {
        "dtype": args.dtype, "window_s": args.window, "naive_window_s": args.naive_window,
        "clients": CLIENTS, "threads": args.threads, "load_average": os.getloadavg(), "weights_mb": weights / 2**20,
        "rss_before_model_mb": base_rss / 2**20, "rss_after_model_mb": loaded_rss / 2**20,
        "mean_prompt_tokens": statistics.mean(len(ids) for ids, _ in requests),
        "mean_output_tokens": statistics.mean(n for _, n in requests),
    }  # fmt: skip
    # c first, so that its peak RSS is not the allocator's leftovers from b.
    log("c: continuous batching,", CLIENTS, "clients,", args.window, "s")
    out["c"] = continuous(model, tokenizer, requests, args.window, int(args.kv_cache_mb * 2**20))
    log("b: static batching through the batcher,", CLIENTS, "clients,", args.window, "s")
    out["b"] = static(model, tokenizer, requests, args.window)
    log("a: naive generate(), one request at a time,", args.naive_window, "s")
    # On a worker thread, as the server runs its engines (and as b and c run): see _on_a_thread.
    out["a"] = _on_a_thread(naive, model, tokenizer, requests, args.naive_window)
    if args.transformers_window > 0:
        log("d: transformers' continuous batching (paged),", CLIENTS, "clients,",
            args.transformers_window, "s")  # fmt: skip
        out["d"] = continuous(
            model, tokenizer, requests, args.transformers_window,
            int(args.kv_cache_mb * 2**20), implementation="transformers",
        )  # fmt: skip
    if args.ct2_window > 0:
        out["e"] = _ctranslate2(model, tokenizer, requests, args, log)
    out["load_average_after"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "chat-latest.json").write_text(json.dumps(out, indent=1))
    report(out)
    return 0


def _ctranslate2(model, tokenizer, requests, args, log) -> dict:
    import ctranslate2

    with tempfile.TemporaryDirectory() as tmp:
        log("e: converting to CTranslate2,", args.ct2_compute_type)
        t0 = time.monotonic()
        path = convert_ct2(model, tokenizer, args.ct2_compute_type, Path(tmp))
        converted = time.monotonic() - t0
        size = sum(f.stat().st_size for f in path.iterdir())
        generator = ctranslate2.Generator(
            str(path), device="cpu", compute_type=args.ct2_compute_type, inter_threads=1,
            intra_threads=args.threads,
        )  # fmt: skip
    generator.generate_batch([tokenizer.convert_ids_to_tokens(requests[0][0])] * CLIENTS,
                             max_length=3, min_length=3, include_prompt_in_result=False)  # fmt: skip
    log("e: CTranslate2 behind the batcher,", CLIENTS, "clients,", args.ct2_window, "s")
    result = ctranslate2_mode(generator, tokenizer, requests, args.ct2_window)
    result.update(
        ctranslate2=ctranslate2.__version__, compute_type=args.ct2_compute_type,
        convert_s=converted, model_mb=size / 2**20,
    )  # fmt: skip
    del generator
    return result


def report(out: dict) -> None:
    def ms(d, k):
        return f"{d[k] * 1000:.0f} ms" if k in d else "-"

    print(f"model: random Qwen2 at Qwen2.5-0.5B size, {out['dtype']}; {out['clients']} clients; "
          f"{out['threads'] or 'default'} intra-op thread(s); "
          f"prompts ~{out['mean_prompt_tokens']:.0f} tokens, outputs 16-256 (mean "
          f"{out['mean_output_tokens']:.0f}); load average {out['load_average'][0]:.1f} -> "
          f"{out['load_average_after'][0]:.1f}")  # fmt: skip
    print("| mode | output tokens/s | tokens/CPU-s | completed | short p50 | short p95 |")
    print("|---|---:|---:|---:|---:|---:|")
    names = {
        "a": "(a) naive generate()", "b": "(b) static batching", "c": "(c) continuous",
        "d": "(d) continuous, transformers' paged implementation",
        "e": f"(e) CTranslate2 {out.get('e', {}).get('compute_type', '')} behind the batcher",
    }  # fmt: skip
    for k in [k for k in "abcde" if k in out]:
        d = out[k]
        s = d["short_latency"]
        print(f"| {names[k]} | {d['tokens_per_s']:.1f} | {d['tokens_per_cpu_s']:.1f} | "
              f"{d['completed']} | {ms(s, 'p50')} (n={s['n']}) | {ms(s, 'p95')} |")  # fmt: skip
    a, b, c = out["a"], out["b"], out["c"]
    print(f"c/b tokens/s {c['tokens_per_s'] / b['tokens_per_s']:.2f}x (target >= 1.5x); "
          f"c/a {c['tokens_per_s'] / a['tokens_per_s']:.2f}x (target >= 4x)")  # fmt: skip
    if "p50" in c["short_latency"] and "p50" in b["short_latency"]:
        ratio = c["short_latency"]["p50"] / b["short_latency"]["p50"]
        print(f"short p50 c/b {ratio:.2f}x (target <= 0.5x)")
    if "e" in out:
        e = out["e"]
        line = f"e/c tokens/s {e['tokens_per_s'] / c['tokens_per_s']:.2f}x"
        if "p50" in e["short_latency"] and "p50" in c["short_latency"]:
            line += f"; short p50 e/c {e['short_latency']['p50'] / c['short_latency']['p50']:.2f}x"
        print(f"{line} (CTranslate2 {e['ctranslate2']}, {e['compute_type']}, model "
              f"{e['model_mb']:.0f} MB, converted in {e['convert_s']:.0f} s; mean rows per step "
              f"{e['mean_rows_per_step']:.1f}; peak RSS during e {e['peak_rss_mb']:.0f} MB)")  # fmt: skip
    print(f"memory: RSS before model {out['rss_before_model_mb']:.0f} MB, after model "
          f"{out['rss_after_model_mb']:.0f} MB (weights {out['weights_mb']:.0f} MB); peak during c "
          f"{c['peak_rss_mb']:.0f} MB; KV budget {c['kv_budget_mb']:.0f} MB, peak KV "
          f"{c['peak_kv_mb']:.1f} MB; mean rows per step {c['mean_rows_per_step']:.1f}")  # fmt: skip
    if "kv_store_mb" in c:
        above = c["peak_rss_mb"] - out["rss_after_model_mb"]
        verdict = "met" if above <= c["kv_budget_mb"] else "NOT met"
        print(f"memory target: peak RSS during c - RSS after model = {above:.0f} MB against a "
              f"budget of {c['kv_budget_mb']:.0f} MB (KV cache {c['kv_store_mb']:.0f} MB for "
              f"{c['cache_tokens']} tokens, one step's working memory "
              f"{c['step_memory_mb']:.0f} MB + per-token): {verdict}")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
