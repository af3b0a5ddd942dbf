"""Hostile callers and hostile configuration against admission, errors and settings.

Everything goes through a real server (copy model: output == input) and the real client, or a
raw gRPC channel where the client would refuse to send what a hostile caller sends; the config
cases run the real `dragoman serve` in a subprocess.
"""

import concurrent.futures
import logging
import os
import signal
import subprocess
import sys
import threading
import time

import grpc
import pytest

import dragoman
from conftest import COPY_MODEL, copy_model, make_config, needs_copy_model
from dragoman._requests import rpc_error, service_config
from dragoman.v1 import dragoman_pb2 as pb
from dragoman.v1 import dragoman_pb2_grpc as pb_grpc
from dragoman_server.auth import hash_key
from dragoman_server.server import BackgroundServer

pytestmark = [needs_copy_model, pytest.mark.timeout(180)]

MODEL = "copy-pt-en"
KEYS = [f"hostile-key-{i}" for i in range(8)]
TRANSLATE = "/dragoman.v1.Dragoman/Translate"
TRANSLATE_STREAM = "/dragoman.v1.Dragoman/TranslateStream"


def words(count: int) -> str:
    """A Portuguese-looking text of exactly `count` characters, in sentences."""
    sentence = "O governo anunciou hoje novas medidas. "
    text = (sentence * (count // len(sentence) + 1))[:count]
    return text[:-1] + "." if text.endswith(" ") else text


def requests_counted(server: BackgroundServer, method: str, code: str) -> float:
    return server.server.metrics.requests.labels(method, code)._value.get()


def errors_counted(server: BackgroundServer, method: str, code: str, reason: str) -> float:
    """dragoman_request_errors_total for these labels, as scraped (0 when absent)."""
    wanted = f'dragoman_request_errors_total{{code="{code}",method="{method}",reason="{reason}"}}'
    for line in server.server.metrics.text().splitlines():
        if line.startswith(wanted + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _served_again(server: BackgroundServer) -> bool:
    """A call is served within 10 s (the concurrency slots came back)."""
    deadline = time.monotonic() + 10
    with dragoman.Client(server.address, retries=0, timeout=10) as client:
        while time.monotonic() < deadline:
            try:
                return client.translate("Olá.", to="en", source="pt")[0].text == "Olá."
            except dragoman.DragomanError:
                time.sleep(0.1)
    return False


# -- quotas ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quota_server():
    config = make_config([copy_model(MODEL, "pt-en")], api_keys=KEYS, quota_chars_per_minute=1000)
    with BackgroundServer(config) as running:
        assert running.ready
        yield running


def _client(server, key, retries=0):
    return dragoman.Client(server.address, api_key=key, retries=retries, timeout=30)


def test_a_call_larger_than_the_quota_is_failed_precondition_and_never_served(quota_server):
    """Before: with 1000 characters a minute, one call of any size was served when the bucket was
    full (and charged only 1000): the quota could be exceeded 400x."""
    before = requests_counted(quota_server, "Translate", "FAILED_PRECONDITION")
    with _client(quota_server, KEYS[0], retries=4) as client:
        for _ in range(2):  # a full bucket does not let it through either
            with pytest.raises(dragoman.DragomanError) as caught:
                client.translate(words(1500), to="en", source="pt")
            error = caught.value
            assert error.code == grpc.StatusCode.FAILED_PRECONDITION
            assert error.reason == "QUOTA_REQUEST_TOO_LARGE"
            assert error.domain == "dragoman.v1"
            assert "1500 characters" in error.message and "1000" in error.message
            [violation] = error.quota_violations
            assert violation.subject == f"key:{hash_key(KEYS[0])[:8]}"
            assert error.retry_after_s is None  # retrying cannot help
        # The bucket was not touched: a call that fits is served.
        assert client.translate(words(900), to="en", source="pt")[0].text == words(900)
    # Not retried by the client (retries=4): each refused call reached the server once.
    assert requests_counted(quota_server, "Translate", "FAILED_PRECONDITION") == before + 2


def test_an_empty_bucket_is_resource_exhausted_with_quota_failure_and_retry_info(quota_server):
    with _client(quota_server, KEYS[1]) as client:
        client.translate(words(600), to="en", source="pt")
        with pytest.raises(dragoman.DragomanError) as caught:
            client.translate(words(600), to="en", source="pt")
    error = caught.value
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.reason == "QUOTA_EXCEEDED"
    assert error.quota_violations and "1000 characters per minute" in (
        error.quota_violations[0].description
    )
    # 400 left, 600 needed, 1000 a minute: the call fits again in ~12 s.
    assert 10 < error.retry_after_s <= 12.5


def test_requests_rejected_by_validation_cost_no_quota(quota_server):
    """Before: the quota was charged before validation, so invalid calls used it up."""
    with _client(quota_server, KEYS[2]) as client:
        for _ in range(5):  # 5 x 900 characters, each call invalid (its second text is empty)
            with pytest.raises(dragoman.DragomanError) as caught:
                client.translate([words(900), " "], to="en", source="pt")
            assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
            assert caught.value.reason == "TEXT_EMPTY"
        assert client.translate(words(900), to="en", source="pt")[0].text == words(900)


def test_streams_are_charged_like_unary_calls(quota_server):
    with _client(quota_server, KEYS[3]) as client:
        with pytest.raises(dragoman.DragomanError) as caught:
            list(client.translate_stream(words(1500), to="en", source="pt"))
        assert caught.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert caught.value.reason == "QUOTA_REQUEST_TOO_LARGE"
        chunks = list(client.translate_stream(words(600), to="en", source="pt"))
        assert "".join(c.text for c in chunks) == words(600)
        with pytest.raises(dragoman.DragomanError) as caught:
            client.translate(words(600), to="en", source="pt")
        assert caught.value.reason == "QUOTA_EXCEEDED"


def test_the_client_retries_unavailable_only():
    import json

    config = json.loads(service_config(retries=4, round_robin=False))
    for method in config["methodConfig"]:
        assert method["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]


# -- undecodable requests ---------------------------------------------------------------------------

GARBAGE = {
    "not-protobuf": b"\xff\xff\xff\xff",
    "truncated": b"\x0a\x10abc",  # texts: says 16 bytes follow, 3 do
    "invalid-utf8-text": b"\x0a\x02\xc3\x28\x12\x02en",  # texts[0] = C3 28, target "en"
}


@pytest.fixture(scope="module")
def open_server():
    config = make_config([copy_model(MODEL, "pt-en")], max_concurrent_requests=2, max_batch_size=1)
    with BackgroundServer(config) as running:
        assert running.ready
        yield running


def _raw_call(address, method, payload, metadata=(), stream=False):
    """Send `payload` bytes as the request of `method`; the DragomanError it ends with."""
    with grpc.insecure_channel(address) as channel:
        if stream:
            call = channel.unary_stream(method)(payload, timeout=10, metadata=metadata)
            try:
                list(call)
            except grpc.RpcError as exc:
                return rpc_error(exc)
        else:
            try:
                channel.unary_unary(method)(payload, timeout=10, metadata=metadata)
            except grpc.RpcError as exc:
                return rpc_error(exc)
    raise AssertionError("the call succeeded")


@pytest.mark.parametrize("stream", [False, True], ids=["unary", "stream"])
@pytest.mark.parametrize("payload", GARBAGE.values(), ids=GARBAGE.keys())
def test_undecodable_requests_are_invalid_argument_logged_and_counted(
    open_server, payload, stream, caplog
):
    """Before: UNKNOWN "Unexpected <class DecodeError>", no access log, no metric, and a 7-line
    traceback per call."""
    method = TRANSLATE_STREAM if stream else TRANSLATE
    short = method.rsplit("/", 1)[1]
    counted = errors_counted(open_server, short, "INVALID_ARGUMENT", "REQUEST_UNDECODABLE")
    with caplog.at_level(logging.INFO):
        caplog.clear()
        error = _raw_call(
            open_server.address, method, payload, metadata=[("x-request-id", "garbage-1")]
        )
        time.sleep(0.1)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT, error
    assert error.reason == "REQUEST_UNDECODABLE" and error.domain == "dragoman.v1"
    assert "not a valid" in error.message
    records = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert len(records) == 1, [r.getMessage() for r in records]  # the access-log line only
    [record] = records
    assert record.name == "dragoman_server.access" and record.exc_info is None
    assert (record.status, record.reason, record.request_id) == (
        "INVALID_ARGUMENT",
        "REQUEST_UNDECODABLE",
        "garbage-1",
    )
    after = errors_counted(open_server, short, "INVALID_ARGUMENT", "REQUEST_UNDECODABLE")
    assert after == counted + 1


def test_undecodable_requests_need_an_api_key_first(quota_server):
    """Authentication comes before decoding: garbage from a stranger is UNAUTHENTICATED."""
    error = _raw_call(quota_server.address, TRANSLATE, GARBAGE["not-protobuf"])
    assert error.code == grpc.StatusCode.UNAUTHENTICATED
    assert error.reason == "API_KEY_MISSING"
    error = _raw_call(
        quota_server.address,
        TRANSLATE,
        GARBAGE["not-protobuf"],
        metadata=[("authorization", f"Bearer {KEYS[4]}")],
    )
    assert error.reason == "REQUEST_UNDECODABLE"


# -- the concurrency limit --------------------------------------------------------------------------


def test_calls_over_max_concurrent_requests_get_too_many_requests_with_retry_info(
    open_server, caplog
):
    """Before: grpc refused them itself: no RetryInfo, no reason, no metric, no log line."""
    text = "\n\n".join(f"Parágrafo {i}: o governo falou da região {i}." for i in range(400))
    client = dragoman.Client(open_server.address, retries=0, timeout=60)
    streams = [client.translate_stream(text, to="en", source="pt") for _ in range(2)]
    try:
        for stream in streams:  # both admitted and running
            next(iter(stream))
        before = errors_counted(open_server, "Translate", "RESOURCE_EXHAUSTED", "TOO_MANY_REQUESTS")
        with caplog.at_level(logging.INFO, logger="dragoman_server.access"):
            with pytest.raises(dragoman.DragomanError) as caught:
                client.translate("Olá.", to="en", source="pt")
            time.sleep(0.1)
        # Health is not limited: probes answer while the service is saturated.
        assert client.health() == "SERVING"
    finally:
        for stream in streams:
            stream.cancel()
        client.close()
    error = caught.value
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.reason == "TOO_MANY_REQUESTS"
    assert error.retry_after_s == 1.0
    assert "max_concurrent_requests is 2" in error.message
    assert (
        errors_counted(open_server, "Translate", "RESOURCE_EXHAUSTED", "TOO_MANY_REQUESTS")
        == before + 1
    )
    assert any(getattr(r, "reason", None) == "TOO_MANY_REQUESTS" for r in caplog.records), (
        "the refusal is access-logged"
    )
    assert _served_again(open_server)  # the slots come back once the streams are gone


def test_the_concurrency_slot_is_released_on_every_path(open_server):
    """Errors, deadlines and garbage all give their slot back (else the server would lock itself
    out): afterwards, as many calls at once as the limit allows are all served."""
    with dragoman.Client(open_server.address, retries=0, timeout=10) as client:
        for _ in range(3):
            with pytest.raises(dragoman.DragomanError):
                client.translate(" ", to="en", source="pt")
            with pytest.raises(dragoman.DragomanError):
                client.translate(words(20000), to="en", source="pt", timeout=0.05)
            _raw_call(open_server.address, TRANSLATE, GARBAGE["not-protobuf"])
        assert _served_again(open_server)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            texts = [f"Frase paralela {i}." for i in range(2)]
            results = list(pool.map(lambda t: client.translate(t, to="en", source="pt"), texts))
        assert [r[0].text for r in results] == texts


# -- the error model --------------------------------------------------------------------------------


def _stub_error(server, request):
    stub = pb_grpc.DragomanStub(grpc.insecure_channel(server.address))
    try:
        stub.Translate(request, timeout=10)
    except grpc.RpcError as exc:
        return rpc_error(exc)
    raise AssertionError("the call succeeded")


def _translate(texts=("Olá.",), **fields):
    fields.setdefault("target_language", "en")
    fields.setdefault("source_language", "pt")
    return pb.TranslateRequest(texts=list(texts), **fields)


@pytest.mark.parametrize(
    "request_, reason, field",
    [
        (pb.TranslateRequest(target_language="en"), "TEXT_MISSING", "texts"),
        (_translate(["Olá.", "  "]), "TEXT_EMPTY", "texts[1]"),
        (_translate(["x"] * 129), "TOO_MANY_TEXTS", "texts"),
        (_translate(["x" * 100_001]), "TEXT_TOO_LONG", "texts[0]"),
        (_translate(["x" * 90_000] * 5), "REQUEST_TOO_LARGE", "texts"),
        (_translate(target_language=" "), "TARGET_LANGUAGE_MISSING", "target_language"),
        (_translate(target_language="e!n"), "LANGUAGE_INVALID", "target_language"),
        (_translate(source_language="x1"), "LANGUAGE_INVALID", "source_language"),
        (_translate(mime_type="application/pdf"), "MIME_TYPE_UNSUPPORTED", "mime_type"),
        (
            _translate(glossary=[pb.GlossaryEntry(source=" ", target="x")]),
            "GLOSSARY_ENTRY_INVALID",
            "glossary[0].source",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_invalid_arguments_carry_reason_and_field_violations(open_server, request_, reason, field):
    """Before: a bare status and message, no ErrorInfo, no BadRequest."""
    error = _stub_error(open_server, request_)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.reason, error.domain) == (reason, "dragoman.v1")
    assert [v.field for v in error.field_violations] == [field]
    assert field.split("[")[0] in error.message


@pytest.mark.parametrize(
    "request_, code, reason",
    [
        (_translate(model="nope"), "NOT_FOUND", "MODEL_NOT_FOUND"),
        (_translate(target_language="ja"), "INVALID_ARGUMENT", "PAIR_UNSUPPORTED"),
    ],
    ids=["model-not-found", "pair-unsupported"],
)
def test_routing_errors_carry_error_info(open_server, request_, code, reason):
    error = _stub_error(open_server, request_)
    assert error.code == getattr(grpc.StatusCode, code)
    assert (error.reason, error.domain) == (reason, "dragoman.v1")


def test_unexpected_exceptions_are_internal_with_one_log_record(caplog):
    config = make_config([copy_model(MODEL, "pt-en")], warmup=False)
    with BackgroundServer(config) as running:

        async def broken(*args, **kwargs):
            raise ZeroDivisionError("a bug")

        running.server.dataplane.detect = broken  # a bug, injected where the servicer calls
        with caplog.at_level(logging.INFO), dragoman.Client(running.address) as client:
            caplog.clear()
            with pytest.raises(dragoman.DragomanError) as caught:
                client.detect("Olá, mundo.")
            time.sleep(0.1)
    error = caught.value
    assert error.code == grpc.StatusCode.INTERNAL
    assert error.reason == "INTERNAL" and error.metadata == {"exception": "ZeroDivisionError"}
    failures = [r for r in caplog.records if r.exc_info]
    assert len(failures) == 1 and "ZeroDivisionError" in failures[0].getMessage()
    access = [r for r in caplog.records if r.name == "dragoman_server.access"]
    assert [(r.status, r.reason) for r in access] == [("INTERNAL", "INTERNAL")]


# -- the text access log ----------------------------------------------------------------------------


def test_the_text_access_log_has_the_peer_and_the_request_id(open_server):
    """Before: the text line was `method status duration` only, although the README promises
    the peer and the request id (the JSON line had them)."""
    from dragoman_server.logs import TextFormatter

    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(self.format(record))

    handler = Collect()
    handler.setFormatter(TextFormatter())
    logger = logging.getLogger("dragoman_server.access")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        stub = pb_grpc.DragomanStub(grpc.insecure_channel(open_server.address))
        stub.Translate(_translate(), metadata=[("x-request-id", "text-log-7")], timeout=10)
        with pytest.raises(grpc.RpcError):
            stub.Translate(_translate([" "]), metadata=[("x-request-id", "text-log-8")])
        time.sleep(0.1)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    [ok] = [line for line in lines if "request_id=text-log-7" in line]
    assert " OK " in ok and "peer=ipv" in ok and "127.0.0.1" in ok
    [bad] = [line for line in lines if "request_id=text-log-8" in line]
    assert "INVALID_ARGUMENT" in bad and "reason=TEXT_EMPTY" in bad


# -- authentication fails closed, and says so ----------------------------------------------------


def test_the_start_up_line_says_whether_authentication_is_on(caplog):
    with caplog.at_level(logging.INFO, logger="dragoman_server.server"):
        for keys, expected in (({"api_keys": ["k-on-1"]}, "authentication ON"), ({}, "OFF")):
            caplog.clear()
            config = make_config([copy_model(MODEL, "pt-en")], warmup=False, **keys)
            with BackgroundServer(config):
                pass
            [line] = [r.getMessage() for r in caplog.records if "listening" in r.getMessage()]
            assert expected in line, line


# -- configuration: one line, exit 2, for every bad value -------------------------------------------

MODEL_TOML = f'[[models]]\nname = "m"\ntask = "translation"\nsource = "{COPY_MODEL}"\nlanguages = ["pt-en"]\n'


def _bad_configs(tmp_path):
    comment_only = tmp_path / "keys-not-yet-mounted"
    comment_only.write_text("# filled by the secret mount\n")
    not_pem = tmp_path / "cert.txt"
    not_pem.write_text("not a certificate\n")
    # (name, [server] lines, extra model lines, env, flags, words in the message)
    return [
        ("port-negative", "port = -1", "", {}, [], ["port", "0 to 65535"]),
        ("port-too-big", "port = 70000", "", {}, [], ["port", "0 to 65535"]),
        ("port-float", "port = 1.5", "", {}, [], ["port", "integer"]),
        ("port-flag", "", "", {}, ["--port", "70000"], ["--port", "0 to 65535"]),
        ("log-level", 'log_level = "verbose"', "", {}, [], ["log_level", "debug, info"]),
        ("log-format", 'log_format = "xml"', "", {}, [], ["log_format", "text, json"]),
        ("threads-negative", "threads = -3", "", {}, [], ["threads", "0 to 256"]),
        (
            "threads-env",
            "",
            "",
            {"DRAGOMAN_THREADS": "100000"},
            [],
            ["DRAGOMAN_THREADS", "0 to 256"],
        ),
        ("concurrency", "max_concurrent_requests = -1", "", {}, [], ["max_concurrent_requests"]),
        ("quota-negative", "quota_chars_per_minute = -1", "", {}, [], ["quota_chars_per_minute"]),
        ("batch-zero", "max_batch_size = 0", "", {}, [], ["max_batch_size", ">= 1"]),
        ("host-number", "host = 5", "", {}, [], ["host", "string"]),
        ("server-not-table", "server = 5", "", {}, [], ["server must be a table"]),
        ("device", 'device = "gpu"', "", {}, [], ["device", "cuda:N"]),
        ("grace-nan", "grace_period_s = nan", "", {}, [], ["grace_period_s"]),
        ("typo", "prot = 1", "", {}, [], ["server.prot", "did you mean 'port'"]),
        ("model-name-number", "", "name = 5", {}, [], ["name = 5", "non-empty string"]),
        ("model-typo", "", "num_beam = 4", {}, [], ["did you mean 'num_beams'"]),
        ("model-beams", "", "num_beams = 0", {}, [], ["num_beams", "1 to 64"]),
        ("model-glossary", "", "glossary = { Lisboa = 5 }", {}, [], ["glossary", "strings"]),
        ("model-quantize", "", 'quantize = "int4"', {}, [], ["quantize", "dynamic-int8"]),
        (
            "keys-file-comment-only",
            f'api_keys_file = "{comment_only}"',
            "",
            {},
            [],
            ["api_keys_file", "holds no key hash"],
        ),
        ("keys-env-comma", "", "", {"DRAGOMAN_API_KEYS": ","}, [], ["DRAGOMAN_API_KEYS"]),
        ("keys-blank", 'api_keys = [" "]', "", {}, [], ["api_keys", "holds no value"]),
        ("keys-space", 'api_keys = ["two keys"]', "", {}, [], ["api_keys[0]", "no spaces"]),
        (
            "tls-not-pem",
            f'tls_cert = "{not_pem}"\ntls_key = "{not_pem}"',
            "",
            {},
            [],
            ["tls_cert", "not a PEM file"],
        ),
    ]


def _run_serve(tmp_path, name, server_lines, model_lines, env, flags):
    path = tmp_path / f"{name}.toml"
    model = MODEL_TOML
    for line in filter(None, [model_lines]):  # a key of MODEL_TOML is replaced, others added
        key = line.split("=")[0].strip()
        kept = [k for k in model.splitlines() if k.split("=")[0].strip() != key]
        model = "\n".join([*kept, line]) + "\n"
    # "server = 5": the whole [server] table replaced by a number.
    if server_lines.startswith("server ="):
        server = server_lines
    elif "port =" in server_lines:
        server = f"[server]\n{server_lines}"
    else:  # never the default port: a case that wrongly starts must not collide or squat
        server = f"[server]\nport = 0\n{server_lines}"
    path.write_text(f"{server}\n\n{model}")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("DRAGOMAN_")}
    environment.update(env, PYTHONPATH=os.pathsep.join(sys.path))
    process = subprocess.Popen(
        [sys.executable, "-m", "dragoman", "serve", "--config", str(path), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )
    try:
        out, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:  # it started serving: the bad value was taken
        process.send_signal(signal.SIGKILL)
        out, err = process.communicate()
        return None, err
    return process.returncode, err


def test_bad_configs_are_one_line_and_exit_2(tmp_path):
    """Before: some were silently changed (port -1 -> 65535), some served without auth, the rest
    ended in a traceback."""
    cases = _bad_configs(tmp_path)
    results = {}
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = {
            pool.submit(_run_serve, tmp_path, name, *case[:4]): (name, case[4])
            for name, *case in cases
        }
        for future in concurrent.futures.as_completed(futures):
            name, expected = futures[future]
            results[name] = (*future.result(), expected)
    failures = []
    for name, (code, err, expected) in sorted(results.items()):
        ok = (
            code == 2
            and err.count("\n") == 1
            and "Traceback" not in err
            and err.startswith("dragoman: config error: ")
            and all(w in err for w in expected)
        )
        if not ok:
            failures.append(f"{name}: exit {code}: {err[-300:]!r}")
    assert not failures, "\n".join(failures)


def test_bad_config_messages_name_the_file(tmp_path):
    code, err = _run_serve(tmp_path, "named", "port = -1", "", {}, [])
    assert code == 2 and str(tmp_path / "named.toml") in err


def test_a_server_keeps_serving_others_while_one_caller_floods_garbage(open_server):
    """Garbage from one caller (many threads) never fails another caller's valid calls."""
    stop = threading.Event()

    def flood():
        while not stop.is_set():
            _raw_call(open_server.address, TRANSLATE, GARBAGE["invalid-utf8-text"])

    threads = [threading.Thread(target=flood) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        with dragoman.Client(open_server.address, timeout=30) as client:
            for i in range(10):
                try:
                    [result] = client.translate(f"Frase {i}.", to="en", source="pt")
                except dragoman.DragomanError as exc:  # only the concurrency limit may refuse
                    assert exc.reason == "TOO_MANY_REQUESTS", exc
                    time.sleep(exc.retry_after_s / 10)
                    continue
                assert result.text == f"Frase {i}."
    finally:
        stop.set()
        for t in threads:
            t.join()


def test_error_details_survive_pickling(open_server):
    """DragomanError crosses process pools (e.g. multiprocessing) with its parsed details."""
    import pickle

    error = _stub_error(open_server, _translate(["Olá.", " "]))
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.code, copy.message, copy.reason, copy.domain) == (
        error.code,
        error.message,
        "TEXT_EMPTY",
        "dragoman.v1",
    )
    assert (
        copy.field_violations
        == error.field_violations
        == (dragoman.FieldViolation("texts[1]", "texts[1] is empty"),)
    )
    assert repr(copy) == repr(error) and "TEXT_EMPTY" in repr(error)


def test_a_port_in_use_is_one_line_and_exit_1(tmp_path):
    """Before: grpc's RuntimeError ended `dragoman serve` in a traceback."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = _run_serve(tmp_path, "in-use", f"port = {port}", "", {}, [])
    assert code == 1 and "Traceback" not in err
    assert f"dragoman: cannot listen on 127.0.0.1:{port}" in err


def test_concurrent_calls_of_one_key_never_overdraw_its_quota(quota_server):
    """20 calls of 100 characters at once against 1000 a minute: exactly 10 are served."""
    with _client(quota_server, KEYS[5]) as client:

        def call(i):
            try:
                client.translate(words(100), to="en", source="pt")
                return "served"
            except dragoman.DragomanError as exc:
                return exc.reason

        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            outcomes = list(pool.map(call, range(20)))
    assert outcomes.count("served") == 10, outcomes
    assert outcomes.count("QUOTA_EXCEEDED") == 10


@pytest.mark.parametrize("header", ["bearer {}", "Bearer   {}", "BEARER  {}"])
def test_the_bearer_scheme_is_case_insensitive_and_spacing_is_lenient(quota_server, header):
    """Documented leniency (README-errors.md): any case of 'Bearer', any spaces or tabs."""
    stub = pb_grpc.DragomanStub(grpc.insecure_channel(quota_server.address))
    response = stub.Translate(
        _translate(), metadata=[("authorization", header.format(KEYS[6]))], timeout=10
    )
    assert response.translations[0].text == "Olá."
