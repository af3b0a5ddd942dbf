"""Client-side load balancing over several replicas (GitHub issue 6).

Three `python -m dragoman serve` processes on ephemeral 127.0.0.1 ports, each serving the copy
model (output == input) for pt-en under a different model name, so ``Translation.models`` says
which replica answered. A ``dragoman.Client`` given the three addresses uses round_robin and
retries UNAVAILABLE (its service config): calls spread over all three, and stopping one replica
mid-run (SIGTERM: graceful; SIGKILL: abrupt) loses no call, later calls going to the others.
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import grpc
import pytest

import dragoman
from conftest import COPY_MODEL, needs_copy_model

pytestmark = [needs_copy_model, pytest.mark.timeout(180)]

NAMES = ("copy-a", "copy-b", "copy-c")
START_TIMEOUT_S = 120.0


@dataclass
class Replica:
    name: str
    process: subprocess.Popen
    log: list[str] = field(default_factory=list)
    address: str = ""
    exited_at: float | None = None  # time.monotonic() when the process was seen to exit
    found: threading.Event = field(default_factory=threading.Event)  # address known (or exited)


def _launch(tmp_path, name: str) -> Replica:
    config = tmp_path / f"{name}.toml"
    config.write_text(
        "[server]\nhost = '127.0.0.1'\nthreads = 1\ngrace_period_s = 10\n"
        "max_queue_delay_ms = 2\nlog_format = 'json'\n"
        f"[[models]]\nname = '{name}'\ntask = 'translation'\n"
        f"source = {json.dumps(str(COPY_MODEL))}\nlanguages = ['pt-en']\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "dragoman", "serve", "--config", str(config), "--port", "0"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "DRAGOMAN_LOG_FORMAT": "json"},
    )
    replica = Replica(name, process)
    found = replica.found

    def drain() -> None:  # read the log: the bound port, then keep the pipe from filling
        for line in process.stderr:
            replica.log.append(line)
            match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
            if match and not replica.address:
                replica.address = f"127.0.0.1:{match.group(1)}"
                found.set()
        found.set()  # exited before listening

    threading.Thread(target=drain, daemon=True).start()
    return replica


def _wait_serving(replica: Replica, deadline: float) -> None:
    replica.found.wait(max(0.0, deadline - time.monotonic()))
    assert replica.address, f"{replica.name} did not listen:\n{''.join(replica.log)}"
    with dragoman.Client(replica.address, retries=0) as client:
        while time.monotonic() < deadline:
            assert replica.process.poll() is None, f"{replica.name} died:\n{''.join(replica.log)}"
            try:
                if client.health(timeout=2) == "SERVING":
                    return
            except dragoman.DragomanError:
                pass
            time.sleep(0.2)
    pytest.fail(f"{replica.name} not SERVING after {START_TIMEOUT_S}s:\n{''.join(replica.log)}")


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    """Three replicas, started in parallel, each SERVING; stopped at the end whatever happens.

    Shared by the tests of this module (one start-up, ~15 s on 2 cores): each stopping test stops
    the last replica still running, so run in file order they see 3, 3 and then 2 replicas.
    """
    tmp_path = tmp_path_factory.mktemp("replicas")
    started: list[Replica] = []
    try:
        for name in NAMES:
            started.append(_launch(tmp_path, name))
        deadline = time.monotonic() + START_TIMEOUT_S
        for replica in started:
            _wait_serving(replica, deadline)
        yield started
    finally:
        for replica in started:  # terminate all, then wait: their grace periods overlap
            if replica.process.poll() is None:
                replica.process.terminate()
        for replica in started:
            try:
                replica.process.wait(10)
            except subprocess.TimeoutExpired:
                replica.process.kill()
                replica.process.wait(10)


def _text(i: int) -> str:
    # Unique per call (no replica answers from its translation cache for another's text).
    return f"Chamada número {i}: o governo anunciou hoje novas medidas económicas."


@dataclass
class Outcome:
    started: float
    model: str | None = None
    error: dragoman.DragomanError | None = None


def _call(client: dragoman.Client, i: int) -> Outcome:
    outcome = Outcome(started=time.monotonic())
    text = _text(i)
    try:
        [result] = client.translate(text, to="en", source="pt")
    except dragoman.DragomanError as exc:
        outcome.error = exc
        return outcome
    assert result.text == text, (i, result.text)
    assert len(result.models) == 1, result.models
    outcome.model = result.models[0]
    return outcome


def _alive(replicas) -> list[Replica]:
    return [r for r in replicas if r.process.poll() is None]


def test_calls_spread_over_all_three_replicas(replicas):
    assert len(_alive(replicas)) == 3, "run this test first: it needs all three replicas"
    sent = 60
    with dragoman.Client([r.address for r in replicas], timeout=30) as client:
        assert client.target.startswith("ipv4:") and client.target.count(",") == 2
        outcomes = [_call(client, i) for i in range(sent)]
    errors = [o.error for o in outcomes if o.error]
    counts = Counter(o.model for o in outcomes if o.model)
    print(f"\nspread: sent={sent} answered={sum(counts.values())} per replica={dict(counts)}")
    assert not errors, errors
    assert sum(counts.values()) == sent
    assert set(counts) == set(NAMES), counts
    assert all(counts[name] >= 10 for name in NAMES), counts  # round robin: ~20 each


@dataclass
class Run:
    victim: Replica
    survivors: list[Replica]
    sent: int
    signalled_at: float
    outcomes: list[Outcome]

    @property
    def answered(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.model]

    @property
    def lost(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error]

    def served(self, start: float = float("-inf"), end: float = float("inf")) -> Counter:
        """Calls answered per replica, of those that started in [start, end)."""
        return Counter(o.model for o in self.answered if start <= o.started < end)


def _run_and_stop(
    replicas, sig: signal.Signals, stop_after: int = 50, after_exit: int = 40, most: int = 1000
) -> Run:
    """Calls from 4 threads over every running replica; after `stop_after` answers, `sig` goes
    to the last running replica. Calls go on until `after_exit` of them started after it exited
    (at most `most` calls in all), so that the survivors' share is always seen. Prints the
    numbers; checks what holds for any signal."""
    alive = _alive(replicas)
    if len(alive) < 2:
        pytest.skip("needs two running replicas")
    victim, survivors = alive[-1], alive[:-1]
    enough = threading.Event()
    lock = threading.Lock()
    signalled_at: list[float] = []
    outcomes: list[Outcome] = []

    def worker(client):
        while True:
            with lock:
                i = len(outcomes)
                exited = victim.exited_at
                started_after = sum(1 for o in outcomes if exited and o.started >= exited)
                if i >= most or started_after >= after_exit:
                    return
                outcomes.append(Outcome(started=time.monotonic()))  # its place, filled below
            outcome = _call(client, i)
            with lock:
                outcomes[i] = outcome
                if sum(1 for o in outcomes if o.model or o.error) == stop_after:
                    enough.set()

    def stopper():
        if not enough.wait(60):
            return
        signalled_at.append(time.monotonic())
        victim.process.send_signal(sig)
        victim.process.wait(30)
        victim.exited_at = time.monotonic()

    watcher = threading.Thread(target=stopper, daemon=True)
    watcher.start()
    started = time.monotonic()
    with dragoman.Client([r.address for r in alive], timeout=30) as client:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: worker(client), range(4)))
    sent = len(outcomes)
    elapsed = time.monotonic() - started
    watcher.join(35)
    assert signalled_at, "the replica was never stopped"
    assert victim.exited_at is not None, "the stopped replica did not exit"
    run = Run(victim, survivors, sent, signalled_at[0], outcomes)

    print(
        f"\n{sig.name} {victim.name} after {stop_after} answers: sent={sent} "
        f"answered={len(run.answered)} lost={len(run.lost)} in {elapsed:.1f}s; "
        f"exit code {victim.process.returncode}, "
        f"{victim.exited_at - run.signalled_at:.2f}s after the signal\n"
        f"  per replica, all calls: {dict(run.served())}\n"
        f"  calls started before the signal: {dict(run.served(end=run.signalled_at))}\n"
        f"  started between signal and exit: "
        f"{dict(run.served(run.signalled_at, victim.exited_at))}\n"
        f"  started after the exit: {dict(run.served(victim.exited_at))}\n"
        f"  lost: {[str(o.error) for o in run.lost]}"
    )
    assert len(run.answered) + len(run.lost) == sent
    assert run.served(end=run.signalled_at)[victim.name] > 0  # it was in the rotation
    after = run.served(victim.exited_at)
    assert sum(after.values()) > 0, "no call started after the stopped replica exited"
    assert after[victim.name] == 0, after
    for survivor in survivors:
        assert after[survivor.name] > 0, after  # the survivors share the rest
    return run


def test_sigterm_one_replica_mid_run_loses_no_call(replicas):
    """Graceful stop: in-flight calls finish on it, new ones go to the others; none lost."""
    run = _run_and_stop(replicas, signal.SIGTERM)
    assert not run.lost, [o.error for o in run.lost]
    assert len(run.answered) == run.sent
    assert run.victim.process.returncode == 0, "".join(run.victim.log)
    assert "shutting down" in "".join(run.victim.log)


def test_sigkill_one_replica_mid_run_loses_no_call(replicas):
    """Abrupt stop. Calls started after the kill never fail (UNAVAILABLE is retried on another
    replica). Calls in flight on the killed replica are retried too, as long as they were not
    committed: the server sends no response headers before its answer (the request id travels
    in trailers), so none is. Should gRPC still give one up, it must be one of those in flight
    (at most one per client thread), and the test records an expected failure, not a pass."""
    run = _run_and_stop(replicas, signal.SIGKILL)
    assert run.victim.process.returncode == -signal.SIGKILL
    for outcome in run.lost:
        assert outcome.error.code == grpc.StatusCode.UNAVAILABLE, outcome.error
        assert outcome.started < run.signalled_at, "a call started after the kill was lost"
    assert len(run.lost) <= 4  # the calls in flight on it when it was killed, at most
    if run.lost:
        pytest.xfail(f"{len(run.lost)} call(s) in flight on the SIGKILLed replica not retried")
