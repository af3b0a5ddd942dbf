"""Load: many concurrent callers (threads and separate processes) through the copy model.

Every call is answered, none lost, each caller gets back exactly its own text (the copy model
returns its input), and a full queue is only ever answered RESOURCE_EXHAUSTED.
"""

import concurrent.futures
import multiprocessing

import grpc
import pytest

import dragoman
from conftest import copy_model, make_config, needs_copy_model
from dragoman_server.server import BackgroundServer

pytestmark = [needs_copy_model, pytest.mark.timeout(180)]
MODEL = "copy-pt-en"


def _text(caller: str, i: int) -> str:
    size = (0, 1, 3, 6)[i % 4]  # mixed sizes: 1 to 7 segments
    extra = "".join(f"\n\nMais um parágrafo {k} de {caller}." for k in range(size))
    return f"Chamada {caller} número {i}: olá.{extra}"


def _caller(address: str, caller: str, calls: int) -> dict:
    """Runs in a thread or a child process; returns counts and any wrong answers."""
    result = {"sent": 0, "ok": 0, "exhausted": 0, "wrong": [], "other": []}
    with dragoman.Client(address, retries=0, timeout=120) as client:
        for i in range(calls):
            text = _text(caller, i)
            result["sent"] += 1
            try:
                [answer] = client.translate(text, to="en", source="pt")
            except dragoman.DragomanError as exc:
                if exc.code == grpc.StatusCode.RESOURCE_EXHAUSTED:
                    result["exhausted"] += 1
                else:
                    result["other"].append(str(exc))
                continue
            if answer.text == text:
                result["ok"] += 1
            else:
                result["wrong"].append((text, answer.text))
    return result


def _process_caller(args):
    return _caller(*args)


def _run(address: str, threads: int, processes: int, calls: int) -> dict:
    jobs = []
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        jobs += [pool.submit(_caller, address, f"t{n}", calls) for n in range(threads)]
        context = multiprocessing.get_context("spawn")
        with context.Pool(processes) as procs:
            in_processes = procs.map(
                _process_caller, [(address, f"p{n}", calls) for n in range(processes)]
            )
        in_threads = [j.result() for j in jobs]
    total = {"sent": 0, "ok": 0, "exhausted": 0, "wrong": [], "other": []}
    for r in in_threads + in_processes:
        for key in total:
            total[key] += r[key]
    return total


def test_concurrent_threads_and_processes_all_answered_with_their_own_text():
    config = make_config([copy_model(MODEL, "pt-en")], max_queue_delay_ms=5)
    with BackgroundServer(config) as server:
        total = _run(server.address, threads=12, processes=4, calls=10)
        stats = server.server.registry.entries[MODEL].batcher.stats
    print(f"\nload: {total['sent']} sent, {total['ok']} answered OK, batches {stats}")
    assert total["sent"] == 160
    assert total["wrong"] == [] and total["other"] == []
    assert total["ok"] == total["sent"]  # none lost, none refused with the default queue
    assert stats.largest_batch > 1  # callers' segments really shared batches


def test_tiny_queue_refuses_only_with_resource_exhausted():
    # 8 holds the largest text (7 segments): a text over the whole queue is INVALID_ARGUMENT
    # (it could never fit), which is not what this test is about.
    config = make_config([copy_model(MODEL, "pt-en")], max_queue_size=8, max_batch_size=4)
    with BackgroundServer(config) as server:
        total = _run(server.address, threads=8, processes=2, calls=4)
    print(f"\ntiny queue: {total['sent']} sent, {total['ok']} OK, {total['exhausted']} refused")
    assert total["wrong"] == [] and total["other"] == []
    assert total["ok"] + total["exhausted"] == total["sent"] == 40
    assert total["exhausted"] > 0 and total["ok"] > 0
