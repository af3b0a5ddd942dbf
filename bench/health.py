"""Health latency while the heaviest legal requests run: `python -m bench health`.

The server runs in its own process (bench/server.py) on the copy model (`../shared/models/
copy-pt-en`), a prober in another process asks `grpc.health.v1` every 10 ms, and this process
sends, in turn:

- `glossary+html`: a 100,000-character text with a 20,000-term glossary (the limit raised to
  20,000, the most an operator would allow) together with an HTML page of 300 paragraphs and
  12,000 unmatched end tags (the text repeats a few sentences, so the model's work is small:
  what is measured is the parsing, matching, segmenting and rendering around it);
- `full-queue`: two texts of 100,000 characters, all sentences different, about 3,800 segments
  (just under the default `max_queue_size` of 4,096): the most one call can queue at once. It is
  given an 8 s deadline: queueing is what is measured, not the copy model's minutes of work.

Each scenario runs `--repeats` times on a fresh server, with the texts varied per repeat (the
translation cache must not answer them). The same is done against a server that skips the heap
freeze after loading (`--no-heap-freeze`, see bench/server.py), so the table shows what the
freeze is for, in one run. Target: the worst health round trip during the requests < 100 ms.
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

from dragoman import AsyncClient, DragomanError

from .run import RESULTS, ROOT, Server

COPY_MODEL = ROOT.parent / "shared" / "models" / "copy-pt-en"

# Probes until its stdin closes, then prints "start_monotonic latency_ms" per probe (the
# monotonic clock is the same for every process on Linux).
PROBER = """
import sys, threading, time
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
samples = []
with grpc.insecure_channel(sys.argv[1]) as channel:
    health = health_pb2_grpc.HealthStub(channel)
    health.Check(health_pb2.HealthCheckRequest(), timeout=10)
    print("ready", flush=True)
    while not stop.is_set():
        started, t = time.monotonic(), time.perf_counter()
        health.Check(health_pb2.HealthCheckRequest(), timeout=30)
        samples.append(f"{started:.6f} {(time.perf_counter() - t) * 1000:.2f}")
        time.sleep(0.01)
print("\\n".join(samples), flush=True)
"""


def glossary_and_html(seed: int) -> list[dict]:
    terms = {f"Termo{k:05d}": f"Term{k:05d}" for k in range(20_000)}
    sentences = [
        f"O Termo{k:05d} e o Termo{(k * 7 + seed) % 20_000:05d} foram citados na sessão {seed}."
        for k in range(8)
    ]
    text, k = "", 0
    while len(text) < 99_000:
        text += sentences[k % len(sentences)] + ("\n\n" if k % 5 == 4 else " ")
        k += 1
    page = f"<p>Olá, mundo {seed}.</p>" * 300 + "</i>" * 12_000 + "<div><b>Fim</b> da página.</div>"
    return [
        {"text_or_texts": text, "glossary": terms},
        {"text_or_texts": page, "mime_type": "text/html"},
    ]


def full_queue(seed: int) -> list[dict]:
    def text(j: int) -> str:
        out, k = "", 0
        while len(out) < 99_000:
            out += f"A reunião {seed}-{j}-{k} decorreu em Lisboa com {k * 37 % 1000} pessoas."
            out += "\n\n" if k % 5 == 4 else " "
            k += 1
        return out

    return [{"text_or_texts": [text(0), text(1)], "timeout": 8.0}]


SCENARIOS = {"glossary+html": glossary_and_html, "full-queue": full_queue}


async def _send(address: str, calls: list[dict]) -> list[str]:
    async with AsyncClient(address, timeout=300, retries=0) as client:

        async def one(call: dict) -> str:
            try:
                await client.translate(to="en", source="pt", **call)
                return "OK"
            except DragomanError as exc:
                return exc.code.name

        return await asyncio.gather(*(one(c) for c in calls))


def run_once(scenario: str, seed: int, flags: tuple[str, ...]) -> dict:
    """One scenario on a fresh server: health latencies (ms) in the second before the calls and
    while they run, the calls' outcomes and duration."""
    model = {
        "name": "copy-pt-en",
        "task": "translation",
        "source": str(COPY_MODEL),
        "languages": ["pt-en"],
    }
    settings = {"threads": 2, "max_queue_delay_ms": 2, "max_glossary_entries": 20_000}
    calls = SCENARIOS[scenario](seed)
    server = Server([model], settings=settings, flags=flags)
    try:
        prober = subprocess.Popen(
            [sys.executable, "-c", PROBER, server.address],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert prober.stdout.readline().strip() == "ready"
        time.sleep(1.0)
        started = time.monotonic()
        outcomes = asyncio.run(_send(server.address, calls))
        ended = time.monotonic()
        out, _ = prober.communicate("", timeout=60)
    finally:
        server.stop()
    samples = [tuple(map(float, line.split())) for line in out.splitlines() if line.strip()]
    return {
        "idle": [ms for t, ms in samples if t < started],
        # A probe that started before the calls but was answered during them counts as busy.
        "busy": [ms for t, ms in samples if t + ms / 1000 >= started and t <= ended],
        "elapsed_s": ended - started,
        "outcomes": outcomes,
    }


def _stats(latencies: list[float]) -> dict:
    ordered = sorted(latencies)
    return {
        "n": len(ordered),
        "p50": statistics.median(ordered),
        "p99": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "max": ordered[-1],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench health", description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if not COPY_MODEL.is_dir():
        print(f"bench health needs the copy model at {COPY_MODEL}", file=sys.stderr)
        return 2
    variants = {"heap frozen (default)": (), "no heap freeze": ("--no-heap-freeze",)}
    out: dict = {"load_average": os.getloadavg(), "repeats": args.repeats, "runs": {}}
    for scenario in SCENARIOS:
        for variant, flags in variants.items():
            idle, busy, elapsed, outcomes = [], [], [], []
            for seed in range(args.repeats):
                print(f"[{time.strftime('%H:%M:%S')}] {scenario}, {variant}, run {seed + 1}",
                      file=sys.stderr, flush=True)  # fmt: skip
                run = run_once(scenario, seed, flags)
                idle += run["idle"]
                busy += run["busy"]
                elapsed.append(run["elapsed_s"])
                outcomes.append(run["outcomes"])
            out["runs"][f"{scenario} | {variant}"] = {
                "idle": _stats(idle),
                "busy": _stats(busy),
                "elapsed_s": elapsed,
                "outcomes": outcomes,
            }
    out["load_average_after"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "health-latest.json").write_text(json.dumps(out, indent=1))
    report(out)
    return 0


def report(out: dict) -> None:
    print(f"health round trips (ms) during the heaviest legal requests, {out['repeats']} runs "
          f"each; load average {out['load_average'][0]:.1f} -> "
          f"{out['load_average_after'][0]:.1f}")  # fmt: skip
    print(
        "| scenario | server | idle p99 | busy p50 | busy p99 | busy max (target < 100) | calls |"
    )
    print("|---|---|---:|---:|---:|---:|---|")
    for name, r in out["runs"].items():
        scenario, variant = name.split(" | ")
        i, b = r["idle"], r["busy"]
        calls = ", ".join(sorted({o for run in r["outcomes"] for o in run}))
        print(f"| {scenario} | {variant} | {i['p99']:.1f} | {b['p50']:.1f} | {b['p99']:.1f} | "
              f"{b['max']:.1f} (n={b['n']}) | {calls} |")  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
