"""Soak (slow): repeated rounds of mixed calls, cancellations and errors; RSS must stay flat."""

import concurrent.futures
import resource

import pytest

import dragoman
from conftest import copy_model, make_config, needs_copy_model
from dragoman_server.server import BackgroundServer

pytestmark = [needs_copy_model, pytest.mark.slow, pytest.mark.timeout(600)]


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _round(client, n: int) -> None:
    def one(i):
        text = "\n\n".join(f"Rodada, chamada {i}, parágrafo {k}." for k in range(1 + i % 5))
        try:
            if i % 7 == 0:
                client.translate(text * 20, to="en", source="pt", timeout=0.3)
            elif i % 11 == 0:
                client.translate(text, to="xx", source="pt")
            else:
                assert client.translate(text, to="en", source="pt")[0].text == text
        except dragoman.DragomanError:
            pass

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(one, range(n)))


def test_rss_is_flat_across_rounds():
    config = make_config([copy_model("copy-pt-en", "pt-en")])
    with BackgroundServer(config) as server:
        with dragoman.Client(server.address, retries=0, timeout=60) as client:
            _round(client, 40)  # warm: allocator pools, caches
            samples = []
            for _ in range(8):
                _round(client, 40)
                samples.append(_rss_mb())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nsoak RSS MB per round: {[round(s) for s in samples]}, peak {peak:.0f} MB")
    first_half = max(samples[:4])
    assert max(samples[4:]) - first_half < 40, samples
