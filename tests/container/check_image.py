"""Checks a built Dragoman image by running it and calling it through the real client.

Run by scripts/container_test.sh (which builds the image); usable alone on a built image:

    PYTHONPATH=client .venv/bin/python tests/container/check_image.py --image dragoman:ci \
        --copy-model ../shared/models/copy-pt-en --articles tests/data/articles

Containers use the host's network (the CI daemon has no bridge) on ephemeral free ports, carry
--label LABEL, and are removed at the end. Every wait polls with a deadline.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import dragoman
from dragoman.errors import DragomanError

MODELS_MOUNT = "/opt/models/copy-pt-en"
_TRANSIENT = ("resource temporarily unavailable", "can't start new thread")
# Generous: 6 jobs may share 2 cores, and torch's import alone takes seconds there.
START_DEADLINE_S = 420
STOP_TIMEOUT_S = 60  # docker stop -t: longer than the image's grace period (30 s)


def log(message: str) -> None:
    print(f"[check_image] {message}", file=sys.stderr, flush=True)


class Failed(Exception):
    pass


def check(condition: bool, message: str) -> None:
    if not condition:
        raise Failed(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Docker:
    def __init__(self, binary: str, label: str):
        self.binary = binary
        self.label = label

    def _run(self, args, timeout: float) -> subprocess.CompletedProcess:
        return subprocess.run([self.binary, *args], capture_output=True, text=True, timeout=timeout)

    def run(self, *args: str, timeout: float = 120, check_rc: bool = True):
        """`docker ARGS`, retried (3 tries in all) while the host is briefly out of threads or
        processes, which a shared CI host can be: "resource temporarily unavailable"."""
        for attempt in range(3):
            result = self._run(args, timeout)
            output = (result.stderr + result.stdout).lower()
            if result.returncode == 0 or not any(t in output for t in _TRANSIENT):
                break
            log(f"docker {args[0]}: the host is out of threads (try {attempt + 1}), retrying")
            if args[0] == "run" and "--name" in args:
                self._run(("rm", "-f", args[args.index("--name") + 1]), 60)
            time.sleep(5 * (attempt + 1))
        if check_rc and result.returncode != 0:
            raise Failed(
                f"docker {' '.join(args)}: rc {result.returncode}: {result.stderr.strip()}"
            )
        return result

    def start(self, image: str, name: str, *options: str, command: tuple[str, ...] = ()) -> str:
        args = ["run", "-d", "--network", "host", "--label", self.label, "--name", name]
        self.run(*args, *options, image, *command)
        return name

    def state(self, name: str) -> dict:
        return json.loads(self.run("inspect", "-f", "{{json .State}}", name).stdout)

    def logs(self, name: str) -> str:
        result = self.run("logs", name, check_rc=False)
        return result.stdout + result.stderr

    def remove(self, name: str) -> None:
        self.run("rm", "-f", "-v", name, check_rc=False, timeout=60)


def wait_for(what: str, probe, deadline_s: float, interval_s: float = 0.5):
    """Polls `probe()` until it returns a truthy value; fails after `deadline_s`."""
    deadline = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < deadline:
        try:
            value = probe()
        except DragomanError as exc:  # not listening yet
            value, last = None, exc
        if value:
            return value
        time.sleep(interval_s)
    raise Failed(f"timed out after {deadline_s:.0f} s waiting for {what} (last: {last})")


def wait_serving(docker: Docker, name: str, client: dragoman.Client) -> None:
    def probe():
        state = docker.state(name)
        if not state["Running"]:
            raise Failed(f"{name} exited ({state['ExitCode']}):\n{docker.logs(name)[-3000:]}")
        return client.health(timeout=5) == "SERVING"

    started = time.monotonic()
    wait_for(f"{name} SERVING", probe, START_DEADLINE_S, interval_s=1)
    log(f"{name}: SERVING after {time.monotonic() - started:.1f} s")


def read_articles(directory: Path) -> tuple[list[str], list[str]]:
    plain = [p.read_text("utf-8") for p in sorted(directory.glob("*.txt"))]
    html = [p.read_text("utf-8") for p in sorted(directory.glob("*.html"))]
    check(bool(plain) and bool(html), f"no .txt and .html articles in {directory}")
    return plain, html


# ----------------------------------------------------------------------------------------------
# The checks


def check_image_files(docker: Docker, image: str) -> None:
    """The config is root's and read-only to the server's user; the writable places are theirs."""
    script = (
        "id -u; stat -c '%u %a' /etc/dragoman/config.toml; "
        "[ -w /etc/dragoman/config.toml ] && echo config-writable; "
        "[ -w /etc/dragoman ] && echo config-dir-writable; "
        "[ -w /models ] && [ -w /var/cache/dragoman ] && echo caches-writable; "
        'echo "$DRAGOMAN_CT2_CACHE"'
    )
    out = docker.run("run", "--rm", "--entrypoint", "sh", image, "-c", script).stdout.split("\n")
    uid, config_stat, *rest = [line for line in out if line]
    check(uid == "10001", f"the image runs as uid {uid}, not 10001")
    check(config_stat == "0 644", f"/etc/dragoman/config.toml is {config_stat} (uid mode)")
    check("config-writable" not in rest and "config-dir-writable" not in rest, f"{rest}")
    check("caches-writable" in rest, f"/models or /var/cache/dragoman not writable: {rest}")
    check(rest[-1].startswith("/var/cache/dragoman/"), f"DRAGOMAN_CT2_CACHE={rest[-1]}")
    stop_signal = docker.run("image", "inspect", "-f", "{{.Config.StopSignal}}", image).stdout
    check(stop_signal.strip() == "SIGTERM", f"STOPSIGNAL {stop_signal.strip()!r}")
    log("image: uid 10001, config root-owned 0644, caches writable, STOPSIGNAL SIGTERM")


def check_pull_command(docker: Docker, image: str) -> None:
    """`dragoman models pull` in the image: its own usage, and it downloads although the image
    sets HF_HUB_OFFLINE=1 (here from a closed loopback port, so it fails to connect)."""
    help_text = docker.run("run", "--rm", image, "models", "pull", "--help").stdout
    check(help_text.startswith("usage: dragoman models pull"), f"help: {help_text[:200]!r}")
    closed = free_port()
    result = docker.run(
        "run",
        "--rm",
        "--network",
        "host",
        "-e",
        f"HF_ENDPOINT=http://127.0.0.1:{closed}",
        image,
        "models",
        "pull",
        check_rc=False,
        timeout=180,
    )
    check(result.returncode == 1, f"pull rc {result.returncode}: {result.stderr[-2000:]}")
    lines = [line for line in result.stderr.splitlines() if "cannot pull" in line]
    check(len(lines) == 3, f"one 'cannot pull' line per default model:\n{result.stderr[-3000:]}")
    check("offline" not in result.stderr.lower(), f"pull stayed offline:\n{result.stderr[-2000:]}")
    log("models pull: right usage; tries the Hub despite HF_HUB_OFFLINE=1 in the image")


def check_default_config_without_models(docker: Docker, image: str) -> None:
    """The image's built-in config, no models mounted: NOT_SERVING, a one-line reason each."""
    port = free_port()
    name = docker.start(
        image,
        f"{docker.label}-nomodels",
        "-e",
        f"DRAGOMAN_PORT={port}",
        "-e",
        "DRAGOMAN_METRICS_PORT=0",
    )
    try:
        with dragoman.Client(f"127.0.0.1:{port}", timeout=10) as client:

            def settled():
                models = client.models(timeout=5)
                return models if all(m.state != "loading" for m in models) else None

            models = wait_for("the default models to fail", settled, START_DEADLINE_S, 1)
            check(len(models) == 3, f"{len(models)} models")
            for model in models:
                check(model.state == "failed", f"{model.name}: {model.state}")
                check("\n" not in model.error and model.error, f"{model.name}: {model.error!r}")
                check("offline" in model.error, f"{model.name}: {model.error!r}")
                check("couldn't connect" not in model.error, f"{model.name}: {model.error!r}")
            check(client.health(timeout=5) == "NOT_SERVING", "health is not NOT_SERVING")
            log(f"default config, no models: NOT_SERVING; e.g. {models[0].error}")
    finally:
        docker.remove(name)


def serving_container(docker: Docker, image: str, copy_model: Path, work: Path):
    """Read-only root, no capabilities, the Kubernetes manifest's writable volumes as tmpfs, the
    copy model through torch and ctranslate2, a non-default port."""
    config = work / "config.toml"
    config.write_text(
        "[server]\n"
        'log_format = "json"\n'
        "cache_size = 0\n"  # every call runs the model (the stop check needs a long call)
        "[[models]]\n"
        'name = "copy-pt-en"\ntask = "translation"\n'
        f'source = "{MODELS_MOUNT}"\nlanguages = ["pt-en"]\n'
        "[[models]]\n"
        'name = "copy-ct2"\ntask = "translation"\nbackend = "ctranslate2"\n'
        f'source = "{MODELS_MOUNT}"\nlanguages = ["es-en"]\n'
    )
    config.chmod(0o644)
    port, metrics_port = free_port(), free_port()
    options = [
        "--read-only",
        "--cap-drop",
        "ALL",
        "--security-opt",
        "no-new-privileges",
        # deploy/kubernetes/deployment.yaml's emptyDir volumes, owned by the server's user as
        # fsGroup makes them there (Docker 20.10 ignores a tmpfs `mode=`: uid/gid it is).
        "--tmpfs",
        "/tmp",
        "--tmpfs",
        "/models:uid=10001,gid=10001",
        "--tmpfs",
        "/var/cache/dragoman:uid=10001,gid=10001",
        "-v",
        f"{config}:/etc/dragoman/config.toml:ro",
        "-v",
        f"{copy_model.resolve()}:{MODELS_MOUNT}:ro",
        "-e",
        f"DRAGOMAN_PORT={port}",
        "-e",
        f"DRAGOMAN_METRICS_PORT={metrics_port}",
        # The image's HEALTHCHECK command, checked often enough to see it turn healthy.
        "--health-interval",
        "2s",
    ]
    name = docker.start(image, f"{docker.label}-serve", *options)
    return name, port, metrics_port


def check_serving(docker: Docker, name: str, client: dragoman.Client, metrics_port: int, articles):
    plain, html = articles
    wait_serving(docker, name, client)
    status = docker.run("exec", name, "cat", "/proc/1/status").stdout
    uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
    check(set(uids) == {"10001"}, f"the server process runs as uid {uids}")
    states = {m.name: (m.state, m.backend) for m in client.models()}
    check(
        states == {"copy-pt-en": ("ready", "torch"), "copy-ct2": ("ready", "ctranslate2")},
        f"{states}",
    )
    rate = None
    for text in plain:
        started = time.monotonic()
        (result,) = client.translate(text, "en", source="pt", timeout=120)
        elapsed = time.monotonic() - started
        check(result.text == text, f"plain article changed:\n{result.text[:300]!r}")
        rate = min(rate or 1e9, len(text) / max(elapsed, 1e-3))
        joined = "".join(
            c.text for c in client.translate_stream(text, "en", source="pt", timeout=120)
        )
        check(joined == text, f"streamed article changed:\n{joined[:300]!r}")
        (result,) = client.translate(text, "en", source="es", model="copy-ct2", timeout=120)
        check(result.text == text, f"ctranslate2 article changed:\n{result.text[:300]!r}")
    for text in html:
        (result,) = client.translate(text, "en", source="pt", mime_type="text/html", timeout=120)
        check(result.text == text, f"HTML article changed:\n{result.text[:300]!r}")
    log(
        f"{len(plain)} plain articles exact (torch, stream, ctranslate2), {len(html)} HTML exact; "
        f"uid 10001, read-only root"
    )
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as r:
        check(b"dragoman_requests_total" in r.read(), "no dragoman_requests_total in /metrics")

    def healthy():
        health = docker.state(name).get("Health") or {}
        if health.get("Status") == "unhealthy":
            raise Failed(f"HEALTHCHECK unhealthy: {health.get('Log', [])[-1:]}")
        return health.get("Status") == "healthy"

    wait_for("the image's HEALTHCHECK on DRAGOMAN_PORT", healthy, 90, 1)
    log("HEALTHCHECK healthy on a non-default DRAGOMAN_PORT")
    return rate


def check_stop_drains_a_call(docker: Docker, name: str, client: dragoman.Client, rate: float):
    """`docker stop` (SIGTERM) while a streamed call runs: the call finishes, the exit code is 0."""
    sentences = [
        f"Parágrafo {i}: o Governo aprovou ontem o Orçamento do Estado para o ano {1900 + i}."
        for i in range(2000)
    ]
    # About 8 s of work at the measured rate, within max_chars_per_text (100 000).
    chars = max(2000, min(int(rate * 8), 95_000))
    paragraphs, total = [], 0
    for sentence in sentences:
        if total + len(sentence) + 2 > chars:
            break
        paragraphs.append(sentence)
        total += len(sentence) + 2
    text = "\n\n".join(paragraphs)
    first_chunk = threading.Event()
    outcome: dict = {}

    def call():
        try:
            parts = []
            for chunk in client.translate_stream(text, "en", source="pt", timeout=120):
                parts.append(chunk.text)
                first_chunk.set()
            outcome["text"] = "".join(parts)
        except Exception as exc:  # reported below
            outcome["error"] = exc
        finally:
            outcome["done"] = time.monotonic()
            first_chunk.set()

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    check(first_chunk.wait(120), "no first chunk of the long call in 120 s")
    check("done" not in outcome, "the long call ended before docker stop: make it longer")
    stop_issued = time.monotonic()
    stop = docker.run("stop", "-t", str(STOP_TIMEOUT_S), name, timeout=STOP_TIMEOUT_S + 30)
    stopped = time.monotonic()
    caller.join(60)
    check("error" not in outcome, f"the call in flight failed: {outcome.get('error')}")
    check(outcome.get("text") == text, "the call in flight returned a changed text")
    check(outcome["done"] > stop_issued, "the call was not in flight when docker stop began")
    state = docker.state(name)
    check(stop.returncode == 0, f"docker stop rc {stop.returncode}")
    check(state["ExitCode"] == 0, f"exit code {state['ExitCode']}:\n{docker.logs(name)[-2000:]}")
    check(stopped - stop_issued < STOP_TIMEOUT_S, "docker stop ran into its timeout (SIGKILL)")
    log(
        f"docker stop: the {len(text)}-char call in flight finished "
        f"{outcome['done'] - stop_issued:.1f} s after SIGTERM; exit 0 after {stopped - stop_issued:.1f} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docker", default="docker")
    parser.add_argument("--image", required=True)
    parser.add_argument("--label", default="dragoman-ci-check")
    parser.add_argument("--copy-model", type=Path, required=True)
    parser.add_argument("--articles", type=Path, required=True)
    args = parser.parse_args()
    docker = Docker(args.docker, args.label)
    articles = read_articles(args.articles)
    name = None
    with tempfile.TemporaryDirectory() as work:
        try:
            name, port, metrics_port = serving_container(
                docker, args.image, args.copy_model, Path(work)
            )
            # While that one loads its models:
            check_image_files(docker, args.image)
            check_pull_command(docker, args.image)
            check_default_config_without_models(docker, args.image)
            with dragoman.Client(f"127.0.0.1:{port}", timeout=30) as client:
                rate = check_serving(docker, name, client, metrics_port, articles)
                check_stop_drains_a_call(docker, name, client, rate)
        except (Failed, subprocess.TimeoutExpired) as exc:
            log(f"FAIL: {exc}")
            if name:
                log(f"{name} log tail:\n{docker.logs(name)[-3000:]}")
            return 1
        finally:
            if name:
                docker.remove(name)
    log("all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
