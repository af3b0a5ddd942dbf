"""Graceful shutdown of `dragoman serve` on SIGTERM: in-flight calls finish, new ones are refused,
exit code 0. The server runs in a subprocess with the copy model on an ephemeral port."""

import json
import re
import signal
import subprocess
import sys
import threading
import time

import grpc
import pytest

import dragoman
from conftest import COPY_MODEL, needs_copy_model
from dragoman.v1 import dragoman_pb2 as pb
from dragoman.v1 import dragoman_pb2_grpc as pb_grpc

pytestmark = [needs_copy_model, pytest.mark.timeout(120)]


def _start(tmp_path, grace: float):
    config = tmp_path / "dragoman.toml"
    config.write_text(
        "[server]\nhost = '127.0.0.1'\nthreads = 2\nmax_batch_size = 4\n"
        f"[[models]]\nname = 'copy-pt-en'\ntask = 'translation'\nsource = {json.dumps(str(COPY_MODEL))}\n"
        "languages = ['pt-en']\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "dragoman_server.cli", "serve", "--config", str(config)]
        + ["--port", "0", "--grace-period-s", str(grace), "--log-format", "json"],
        stderr=subprocess.PIPE,
        text=True,
        env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"},
    )
    lines: list[str] = []
    port = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
        if match:
            port = int(match.group(1))
        if '"message": "serving"' in line:
            break
    assert port, "".join(lines)
    # Keep draining stderr so the server never blocks on a full pipe.
    threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True).start()
    return process, f"127.0.0.1:{port}", lines


def test_sigterm_lets_in_flight_calls_finish_and_exits_0(tmp_path):
    # A grace period far above the calls' few seconds: a loaded machine must not turn the
    # drain into "Cancelling all calls".
    process, address, lines = _start(tmp_path, grace=90)
    try:
        texts = {i: "\n\n".join(f"Chamada {i}, parágrafo {j}." for j in range(8)) for i in range(6)}
        answers: dict[int, object] = {}
        with dragoman.Client(address, retries=0, timeout=120) as client:
            assert client.health() == "SERVING"

            def call(i):
                try:
                    answers[i] = client.translate(texts[i], to="en", source="pt")[0].text
                except dragoman.DragomanError as exc:
                    answers[i] = exc

            threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
            for t in threads:
                t.start()
            time.sleep(0.5)  # all six are in flight (48 segments, 4 a batch: several seconds)
            process.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            # A raw stub without wait-for-ready (the client would wait through UNAVAILABLE).
            with grpc.insecure_channel(address) as channel:
                stub = pb_grpc.DragomanStub(channel)
                request = pb.TranslateRequest(
                    texts=["Nova chamada."], target_language="en", source_language="pt"
                )
                with pytest.raises(grpc.RpcError) as refused:
                    stub.Translate(request, timeout=5)
            for t in threads:
                t.join(120)
        assert process.wait(120) == 0
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert answers == texts, answers  # every in-flight call answered in full
        log = "".join(lines)
        assert "shutting down" in log and '"message": "stopped"' in log
    finally:
        if process.poll() is None:
            process.kill()


def test_sigint_on_an_idle_server_exits_0_at_once(tmp_path):
    process, address, _ = _start(tmp_path, grace=30)
    try:
        started = time.monotonic()
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
        assert time.monotonic() - started < 10
    finally:
        if process.poll() is None:
            process.kill()
