"""Dragoman throughput benchmark, one run, same model and inputs for every measurement.

    python -m bench            # full run (~13 min on 2 cores)
    python -m bench --quick    # fewer sentences, to check that it works
    python -m bench --model DIR_OR_HUB_ID   # a real translation model instead of the random one
    python -m bench --http     # only the HTTP face against gRPC (g below), ~2 min

Measures (translation; summarisation gets a, b, c):
  a  naive: transformers generate(), one sentence at a time, in-process
  b  the engine's tight loop at batch 8/16/32/64, in-process (best)
  c  Dragoman over gRPC on loopback (server in a subprocess), 1/8/32 concurrent clients sending one
     sentence per call, and 16 clients sending 4-sentence paragraphs
  d  b and c with the CTranslate2 backend (int8)
  e  gRPC overhead: p50 round trip of a one-word call to an echo engine vs the same in-process
  f  peak RSS of the server process and its growth over three rounds of c32
  g  (--http only) the HTTP/JSON face against gRPC, on one server with both: with the echo engine,
     p50 of the same one-word call and calls/s at 1/8/32 clients; with the model (torch), 1/8/32
     clients sending one sentence per call (POST /v1/translate vs Translate)
Models are built here with random weights at real size (opus-mt-ROMANCE-en and distilbart-cnn-6-6
dimensions) and generate exactly 32 tokens, so every run does the same work. Prints a table and
writes bench/results/latest.json.
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
NEW_TOKENS = 32


# ---------------------------------------------------------------- models
def _pad_vocab(vocab: dict, size: int, mark: str) -> dict:
    """Pad with short made-up words, so 32 random tokens decode to about a sentence's length."""
    digits = "abcdefghijklmnopqrstuvwxyz"
    i = 0
    while len(vocab) < size:
        n, word = i, ""
        while True:
            n, r = divmod(n, 26)
            word += digits[r]
            if not n:
                break
        token = mark + word
        if token not in vocab:
            vocab[token] = len(vocab)
        i += 1
    return vocab


def _generation(path: Path, **extra) -> None:
    gc = json.loads((path / "generation_config.json").read_text())
    gc.update(
        num_beams=1, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, max_length=None,
        min_length=None, suppress_tokens=None, **extra,
    )  # fmt: skip
    gc = {k: v for k, v in gc.items() if v is not None}
    (path / "generation_config.json").write_text(json.dumps(gc, indent=1))


def build_marian(path: Path) -> Path:
    """Random Marian at opus-mt-ROMANCE-en size; the tokenizer's vocabulary padded to 65001."""
    import torch
    from transformers import MarianConfig, MarianMTModel

    from model_factory import build_marian as tiny

    if (path / "model.safetensors").exists():
        return path
    tiny(path)
    vocab = _pad_vocab(json.loads((path / "vocab.json").read_text()), 65001, "\u2581")
    (path / "vocab.json").write_text(json.dumps(vocab))
    tc = json.loads((path / "tokenizer_config.json").read_text())
    tc["model_max_length"] = 512
    (path / "tokenizer_config.json").write_text(json.dumps(tc))
    old = json.loads((path / "config.json").read_text())
    torch.manual_seed(0)
    config = MarianConfig(
        vocab_size=65001, decoder_vocab_size=65001, d_model=512, encoder_layers=6,
        decoder_layers=6, encoder_attention_heads=8, decoder_attention_heads=8,
        encoder_ffn_dim=2048, decoder_ffn_dim=2048, max_position_embeddings=512,
        pad_token_id=old["pad_token_id"], eos_token_id=old["eos_token_id"],
        decoder_start_token_id=old["decoder_start_token_id"], scale_embedding=True,
    )  # fmt: skip
    MarianMTModel(config).save_pretrained(path)
    _generation(path)
    return path


def build_bart(path: Path) -> Path:
    """Random BART at distilbart-cnn-6-6 size; the tokenizer's vocabulary padded to 50265."""
    import torch
    from transformers import BartConfig, BartForConditionalGeneration

    from model_factory import build_bart as tiny

    if (path / "model.safetensors").exists():
        return path
    tiny(path)
    tok = json.loads((path / "tokenizer.json").read_text())
    _pad_vocab(tok["model"]["vocab"], 50265, "\u0120")
    (path / "tokenizer.json").write_text(json.dumps(tok))
    tc = json.loads((path / "tokenizer_config.json").read_text())
    tc["model_max_length"] = 1024
    (path / "tokenizer_config.json").write_text(json.dumps(tc))
    old = json.loads((path / "config.json").read_text())
    torch.manual_seed(0)
    config = BartConfig(
        vocab_size=50265, d_model=1024, encoder_layers=6, decoder_layers=6,
        encoder_attention_heads=16, decoder_attention_heads=16, encoder_ffn_dim=4096,
        decoder_ffn_dim=4096, max_position_embeddings=1024,
        pad_token_id=old["pad_token_id"], eos_token_id=old["eos_token_id"],
        bos_token_id=old.get("bos_token_id"), decoder_start_token_id=old["decoder_start_token_id"],
    )  # fmt: skip
    BartForConditionalGeneration(config).save_pretrained(path)
    _generation(path)
    return path


# ---------------------------------------------------------------- inputs
_serial = iter(range(10**9))


def sentences(n: int) -> list[str]:
    """News sentences, each made unique (the server caches and shares equal segments)."""
    from model_factory import NEWS_CORPUS

    out = []
    for _ in range(n):
        i = next(_serial)
        out.append(f"{NEWS_CORPUS[i % len(NEWS_CORPUS)][:-1]} ({i}).")
    return out


SENTENCES_PER_PARAGRAPH = 4


def paragraphs(n: int) -> list[str]:
    k = SENTENCES_PER_PARAGRAPH
    s = sentences(k * n)
    return [" ".join(s[k * i : k * i + k]) for i in range(n)]


# ---------------------------------------------------------------- in-process
def naive(path: str, texts: list[str]) -> dict:
    import torch
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSeq2SeqLM.from_pretrained(path).eval()
    tokens = 0
    with torch.inference_mode():
        for t in texts[:2]:  # warm-up
            model.generate(**tok([t], return_tensors="pt"))
    started = time.perf_counter()
    with torch.inference_mode():
        for t in texts:
            out = model.generate(**tok([t], return_tensors="pt"))
            tokens += out.shape[1] - 1
    elapsed = time.perf_counter() - started
    return {"sentences_s": len(texts) / elapsed, "tokens_s": tokens / elapsed}


def model_entry(name, task, path, backend="torch", **extra) -> dict:
    languages = ["pt-en"] if task == "translation" else ["en"]
    entry = {"name": name, "task": task, "source": str(path), "languages": languages}
    # Random weights fail every output check: flagged, not regenerated, so that the figures are
    # those of a model whose outputs pass (the checks themselves still run).
    return {**entry, "backend": backend, "output_checks": "flag", **extra}


def tight_loop(entry: dict, texts: list[str], sizes=(8, 16, 32, 64)) -> dict:
    from conftest import make_config
    from dragoman_server.engines import GenerationParams, load_engine

    config = make_config([entry])
    engine = load_engine(config.models[0], config.server)
    lang = ("pt", "en") if entry["task"] == "translation" else ("en", "en")
    params = GenerationParams(*lang, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS)
    for size in sizes:  # warm-up: the first call at each shape is slow (kernels, allocations)
        engine.generate(texts[:size], params)
    result = {}
    for size in sizes:
        started, tokens = time.perf_counter(), 0
        for i in range(0, len(texts), size):
            tokens += sum(g.output_tokens for g in engine.generate(texts[i : i + size], params))
        elapsed = time.perf_counter() - started
        result[f"b{size}"] = {"sentences_s": len(texts) / elapsed, "tokens_s": tokens / elapsed}
    result["best"] = max(v["sentences_s"] for v in result.values())
    engine.close()
    return result


def inprocess_echo_p50(n: int) -> float:
    """p50 of a one-word call through the batcher (what the server does, minus gRPC)."""
    from bench.server import EchoEngine
    from conftest import make_config
    from dragoman_server.batcher import Batcher
    from dragoman_server.engines import GenerationParams
    from dragoman_server.settings import ServerSettings

    settings = ServerSettings()
    engine = EchoEngine(make_config([model_entry("echo", "translation", "x")]).models[0])

    async def go():
        b = Batcher(engine, max_queue_delay_ms=settings.max_queue_delay_ms)
        times = []
        for _ in range(n):
            t = time.perf_counter()
            await b.generate([f"Olá{len(times)}"], [2], GenerationParams("pt", "en"))
            times.append(time.perf_counter() - t)
        b.close()
        return statistics.median(times) * 1000

    return asyncio.run(go())


# ---------------------------------------------------------------- server
class Server:
    def __init__(
        self,
        models: list[dict],
        echo: bool = False,
        threads: int = 0,
        http=False,
        settings: dict | None = None,
        flags: tuple[str, ...] = (),
    ):
        server = {"host": "127.0.0.1", "port": 0, "threads": threads, "log_level": "error"}
        server.update(settings or {})
        if http:
            server.update(http=True, http_port=0)
        self.file = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
        json.dump({"server": server, "models": models}, self.file)
        self.file.close()
        cmd = [sys.executable, "-m", "bench.server", self.file.name, *flags]
        cmd += ["--echo"] if echo else []
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        line = self.proc.stdout.readline()
        if not line.startswith("PORT"):
            raise RuntimeError(f"server did not start: {line!r}")
        words = line.split()
        self.address = f"127.0.0.1:{words[1]}"
        self.http_url = f"http://127.0.0.1:{words[3]}" if len(words) > 3 else None

    def rss_mb(self) -> tuple[float, float]:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

    def stop(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.unlink(self.file.name)


async def _closed_loop(call, texts: list[str], clients: int) -> dict:
    """`clients` closed-loop callers share `texts`, each sending its next call when its answer
    came; `call(text)` returns the output tokens. One warm-up call first, not counted."""
    queue = list(reversed(texts))
    latencies, tokens = [], 0
    await call("Aquecimento. " + texts[0])

    async def client():
        nonlocal tokens
        while queue:
            text = queue.pop()
            t = time.perf_counter()
            # Not `tokens += await ...`: that reads `tokens` before the await and loses the other
            # clients' additions made meanwhile.
            output_tokens = await call(text)
            tokens += output_tokens
            latencies.append(time.perf_counter() - t)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "calls_s": len(texts) / elapsed,
        "tokens_s": tokens / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p95_ms": 1000 * latencies[int(len(latencies) * 0.95)],
    }


async def _load(address: str, task: str, texts: list[str], clients: int) -> dict:
    import grpc

    from dragoman import _requests
    from dragoman.v1 import dragoman_pb2_grpc

    async with grpc.aio.insecure_channel(address) as channel:
        stub = dragoman_pb2_grpc.DragomanStub(channel)

        async def call(text):
            if task == "translation":
                request = _requests.translate_request([text], "en", source="pt")
                response = await stub.Translate(request)
                return sum(t.output_tokens for t in response.translations)
            response = await stub.Summarize(_requests.summarize_request(text, source="en"))
            return response.output_tokens

        return await _closed_loop(call, texts, clients)


def load(address, task, texts, clients) -> dict:
    return asyncio.run(_load(address, task, texts, clients))


async def _load_http(url: str, texts: list[str], clients: int) -> dict:
    """`_load` for translation over the HTTP face: POST /v1/translate, one text per call."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def call(text):
            body = {"texts": [text], "targetLanguage": "en", "sourceLanguage": "pt"}
            async with session.post(f"{url}/v1/translate", json=body) as response:
                response.raise_for_status()
                reply = await response.json()
            return sum(int(t["outputTokens"]) for t in reply["translations"])

        return await _closed_loop(call, texts, clients)


def load_http(url, texts, clients) -> dict:
    return asyncio.run(_load_http(url, texts, clients))


def http_face(marian: str, n: int, log) -> dict:
    """g: the HTTP face against gRPC on the same server (`http_echo`, then `http_model`)."""
    return {**http_echo(log), **http_model(marian, n, log)}


def http_echo(log) -> dict:
    """The faces alone, with the echo engine: p50 of a one-word call, calls/s at 1/8/32 clients.
    Every text is unique (the translation cache would answer a repeated one)."""
    out: dict = {}
    log("[g] HTTP vs gRPC, echo engine")
    server = Server([model_entry("echo", "translation", "/bench-echo")], echo=True, http=True)
    try:
        load(server.address, "translation", [f"Olá{i}a" for i in range(50)], 1)  # warm-up
        load_http(server.http_url, [f"Olá{i}b" for i in range(50)], 1)
        grpc = load(server.address, "translation", [f"Olá{i}g" for i in range(300)], 1)
        http = load_http(server.http_url, [f"Olá{i}h" for i in range(300)], 1)
        for clients in (1, 8, 32):
            texts = [f"Olá{i}g{clients}" for i in range(600)]
            out[f"echo_grpc_c{clients}"] = load(server.address, "translation", texts, clients)
            texts = [f"Olá{i}h{clients}" for i in range(600)]
            out[f"echo_http_c{clients}"] = load_http(server.http_url, texts, clients)
    finally:
        server.stop()
    out["echo"] = {
        "grpc_p50_ms": grpc["p50_ms"],
        "http_p50_ms": http["p50_ms"],
        "overhead_ms": http["p50_ms"] - grpc["p50_ms"],
    }
    return out


def http_model(marian: str, n: int, log) -> dict:
    """1/8/32 clients sending one (unique) sentence per call to the model, torch, each face."""
    out: dict = {}
    log("[g] HTTP vs gRPC, model, torch")
    server = Server([model_entry("m", "translation", marian)], http=True)
    try:
        load(server.address, "translation", sentences(32), 32)  # warm-up: the batch shapes
        for clients in (1, 8, 32):
            k = n // 8 if clients == 1 else n
            out[f"grpc_c{clients}"] = load(server.address, "translation", sentences(k), clients)
            out[f"http_c{clients}"] = load_http(server.http_url, sentences(k), clients)
    finally:
        server.stop()
    return out


def report_http(g: dict) -> None:
    print(f"{'measurement':24} {'calls/s':>9} {'tok/s':>9} {'p50 ms':>9} {'p95 ms':>9}")
    for prefix, label in (("echo_", "echo "), ("", "model ")):
        for clients in (1, 8, 32):
            for face in ("grpc", "http"):
                v = g[f"{prefix}{face}_c{clients}"]
                name = f"{label}{face} c{clients}"
                print(
                    f"{name:24} {v['calls_s']:9.1f} {v['tokens_s']:9.1f} "
                    f"{v['p50_ms']:9.1f} {v['p95_ms']:9.1f}"
                )
    e = g["echo"]
    print(
        f"\necho round trip p50: gRPC {e['grpc_p50_ms']:.2f} ms, HTTP {e['http_p50_ms']:.2f} ms, "
        f"HTTP overhead {e['overhead_ms']:.2f} ms"
    )


# ---------------------------------------------------------------- the run
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer sentences")
    parser.add_argument("--model", help="a translation model directory or Hub id instead")
    parser.add_argument("--no-summarization", action="store_true")
    parser.add_argument("--http", action="store_true", help="only g: the HTTP face against gRPC")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "dragoman-bench"))
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    os.environ.setdefault("DRAGOMAN_CT2_CACHE", str(Path(args.cache) / "ct2"))
    n = 64 if args.quick else 128
    n_naive = 8 if args.quick else 24
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    marian = args.model or str(build_marian(cache / "marian-romance-size"))
    out: dict = {"quick": args.quick, "cpus": os.cpu_count(), "load": os.getloadavg(), "runs": {}}

    def log(*a):
        print(*a, file=sys.stderr, flush=True)

    if args.http:
        out["http"] = http_face(marian, n, log)
        report_http(out["http"])
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "http.json").write_text(json.dumps(out, indent=1))
        return 0
    tasks = [("translation", marian)]
    if not args.no_summarization and not args.model:
        tasks.append(("summarization", str(build_bart(cache / "bart-distilbart-size"))))
    for task, path in tasks:
        r = out["runs"][task] = {}
        n_task = n if task == "translation" else max(8, n // 6)
        sizes = (8, 16, 32, 64) if task == "translation" else (8, 16, 32)

        def fresh(k, task=task):
            return sentences(k) if task == "translation" else paragraphs(k)

        inputs = fresh(n_task)
        log(f"[{task}] a naive")
        r["a"] = naive(path, inputs[: n_naive if task == "translation" else max(4, n_naive // 3)])
        backends = ["torch", "ctranslate2"] if task == "translation" else ["torch"]
        for backend in backends:
            key = "torch" if backend == "torch" else "ct2"
            entry = model_entry("m", task, path, backend)
            log(f"[{task}] b tight loop {backend}")
            r[f"{key}_b"] = tight_loop(entry, inputs, sizes)
            if task == "translation" and backend == "torch":
                log(f"[{task}] b tight loop torch quantize=dynamic-int8")
                quantized = model_entry("m", task, path, backend, quantize="dynamic-int8")
                r["torch_int8_b"] = tight_loop(quantized, inputs, (32,))
            log(f"[{task}] c gRPC {backend}")
            server = Server([entry])
            try:
                load(server.address, task, fresh(n_task), 32)  # warm-up: every batch shape once
                for clients in (1, 8, 32):
                    if clients == 1 and task == "translation":
                        r[f"{key}_c1"] = load(server.address, task, fresh(n // 4), 1)
                    elif clients == 1:
                        r[f"{key}_c1"] = load(server.address, task, fresh(4), 1)
                    else:  # twice the tight loop's inputs: a steady state, not one round's tail
                        k = 2 * n_task
                        r[f"{key}_c{clients}"] = load(server.address, task, fresh(k), clients)
                if task == "translation":
                    # 16 clients x 4 sentences: enough segments in flight for the best batch (64).
                    paras = paragraphs(n // 2)
                    r[f"{key}_c16_paragraphs"] = load(server.address, task, paras, 16)
                    rss = []
                    for _ in range(3 if backend == "torch" else 0):
                        load(server.address, task, fresh(n_task), 32)
                        rss.append(server.rss_mb())
                    if rss:
                        r["rss_mb"] = {"after_rounds": [x[0] for x in rss], "peak": rss[-1][1]}
            finally:
                server.stop()
    log("[e] gRPC overhead")
    server = Server([model_entry("echo", "translation", "/bench-echo")], echo=True)
    try:
        words = [f"Olá{i}" for i in range(300)]
        grpc_p50 = load(server.address, "translation", words, 1)["p50_ms"]
    finally:
        server.stop()
    inproc = inprocess_echo_p50(300)
    out["echo"] = {
        "grpc_p50_ms": grpc_p50,
        "inprocess_p50_ms": inproc,
        "overhead_ms": grpc_p50 - inproc,
    }
    report(out)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(out, indent=1))
    return 0


def report(out: dict) -> None:
    rows = []
    for task, r in out["runs"].items():
        a = r["a"]["sentences_s"]
        rows.append((task, "a naive generate, 1 at a time", a, r["a"]["tokens_s"], None, None))
        for key in ("torch", "torch_int8", "ct2"):
            if f"{key}_b" not in r:
                continue
            for size, v in r[f"{key}_b"].items():
                if size != "best":
                    rows.append(
                        (
                            task,
                            f"b {key} tight loop {size}",
                            v["sentences_s"],
                            v["tokens_s"],
                            None,
                            None,
                        )
                    )  # noqa: E501
            for c in ("c1", "c8", "c32", "c16_paragraphs"):
                if f"{key}_{c}" in r:
                    v = r[f"{key}_{c}"]
                    rows.append(
                        (
                            task,
                            f"c {key} gRPC {c}",
                            v["calls_s"],
                            v["tokens_s"],
                            v["p50_ms"],
                            v["p95_ms"],
                        )
                    )  # noqa: E501
    print(f"{'task':14} {'measurement':32} {'calls/s':>9} {'tok/s':>9} {'p50 ms':>9} {'p95 ms':>9}")
    for task, name, s, t, p50, p95 in rows:
        f = lambda x: f"{x:9.1f}" if x is not None else " " * 9  # noqa: E731
        print(f"{task:14} {name:32} {f(s)} {f(t)} {f(p50)} {f(p95)}")
    print("\nratios")
    ratios = {}
    for task, r in out["runs"].items():
        a = r["a"]["sentences_s"]
        if task == "translation":
            ratios[f"{task} torch c32 / a"] = r["torch_c32"]["calls_s"] / a
            ratios[f"{task} torch c32 / b32"] = (
                r["torch_c32"]["calls_s"] / r["torch_b"]["b32"]["sentences_s"]
            )  # noqa: E501
            best = r["torch_b"]["best"]
            ratios[f"{task} torch c16 paragraphs / best b"] = (
                SENTENCES_PER_PARAGRAPH * r["torch_c16_paragraphs"]["calls_s"] / best
            )
            if "torch_int8_b" in r:
                ratios[f"{task} torch int8 b32 / torch b32"] = (
                    r["torch_int8_b"]["b32"]["sentences_s"] / r["torch_b"]["b32"]["sentences_s"]
                )
            if "ct2_c32" in r:
                ratios[f"{task} ct2 c16 paragraphs / ct2 best b"] = (
                    SENTENCES_PER_PARAGRAPH
                    * r["ct2_c16_paragraphs"]["calls_s"]
                    / r["ct2_b"]["best"]
                )
                ratios[f"{task} ct2 c32 / ct2 b32"] = (
                    r["ct2_c32"]["calls_s"] / r["ct2_b"]["b32"]["sentences_s"]
                )  # noqa: E501
                ratios[f"{task} ct2 c32 / a"] = r["ct2_c32"]["calls_s"] / a
                ratios[f"{task} ct2 b32 / torch b32"] = (
                    r["ct2_b"]["b32"]["sentences_s"] / r["torch_b"]["b32"]["sentences_s"]
                )  # noqa: E501
        else:
            ratios[f"{task} c8 / a"] = r["torch_c8"]["calls_s"] / a
            ratios[f"{task} c8 / b8"] = r["torch_c8"]["calls_s"] / r["torch_b"]["b8"]["sentences_s"]
    for k, v in ratios.items():
        print(f"  {k:40} {v:6.2f}x")
    out["ratios"] = ratios
    e = out["echo"]
    print(
        f"\necho round trip p50: gRPC {e['grpc_p50_ms']:.2f} ms, in-process {e['inprocess_p50_ms']:.2f} ms, overhead {e['overhead_ms']:.2f} ms"
    )  # noqa: E501
    if "rss_mb" in out["runs"].get("translation", {}):
        rss = out["runs"]["translation"]["rss_mb"]
        print(
            f"server RSS after 3 rounds: {', '.join(f'{x:.0f}' for x in rss['after_rounds'])} MB; peak {rss['peak']:.0f} MB"
        )  # noqa: E501
