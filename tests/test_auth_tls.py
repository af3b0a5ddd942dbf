"""API keys, per-key quotas, TLS and mutual TLS, with certificates made in the test."""

import datetime
import ipaddress
import logging

import grpc
import pytest
from google.rpc import error_details_pb2

import dragoman
from conftest import copy_model, make_config, needs_copy_model
from dragoman_server.admission import Quotas, TokenBucket
from dragoman_server.auth import Authenticator, hash_key
from dragoman_server.errors import ConfigError, ResourceExhausted, Unauthenticated
from dragoman_server.server import BackgroundServer
from dragoman_server.settings import Config

pytestmark = [needs_copy_model, pytest.mark.timeout(120)]
MODEL = "copy-pt-en"
KEY_1, KEY_2, QUOTA_KEY = "k1-secret-value", "k2-file-value", "quota-key-value"


# -- unit --------------------------------------------------------------------------------------


def test_token_bucket_refills_continuously():
    now = [0.0]
    bucket = TokenBucket(60, clock=lambda: now[0])  # 1 a second, 60 at most
    bucket.take(60)
    assert bucket.wait_for(1) == pytest.approx(1.0)
    now[0] = 0.5
    assert bucket.wait_for(1) == pytest.approx(0.5)
    now[0] = 1000
    assert bucket.wait_for(60) == 0


def test_authenticator_checks_and_quotas_charge():
    now = [0.0]
    auth = Authenticator([hash_key("a")])
    quotas = Quotas(requests_per_minute=2, clock=lambda: now[0])
    with pytest.raises(Unauthenticated) as caught:
        auth.authenticate([])
    assert caught.value.reason == "API_KEY_MISSING"
    with pytest.raises(Unauthenticated) as caught:
        auth.authenticate([("authorization", "Basic a")])
    assert caught.value.reason == "API_KEY_MALFORMED"
    with pytest.raises(Unauthenticated) as caught:
        auth.authenticate([("authorization", "Bearer b")])
    assert caught.value.reason == "API_KEY_INVALID"
    assert "b" not in caught.value.message.replace("API key", "").replace("invalid", "")
    key = auth.authenticate([("authorization", "Bearer a")])
    # Documented: the scheme is case-insensitive and any spaces or tabs may follow it.
    for header in ("bearer a", "BEARER  a", "Bearer \ta ", "  Bearer a"):
        assert auth.authenticate([("authorization", header)]) == key
    quotas.charge(key, 0)
    quotas.charge(key, 0)
    with pytest.raises(ResourceExhausted) as caught:
        quotas.charge(key, 0)
    assert caught.value.retry_after_s == pytest.approx(30.0)
    assert caught.value.reason == "QUOTA_EXCEEDED"


def test_settings_accept_key_lists(tmp_path):
    config = Config.from_dict(
        {"server": {"api_keys": ["a", "b"]}, "models": [copy_model(MODEL, "pt-en")]},
        env={"DRAGOMAN_API_KEYS": "c, d,"},
    )
    assert config.server.api_keys == ("c", "d")
    config = Config.from_dict(
        {"server": {"api_keys": ["a", "b"]}, "models": [copy_model(MODEL, "pt-en")]}
    )
    assert config.server.api_keys == ("a", "b")
    bad = tmp_path / "keys"
    bad.write_text("not-a-hash\n")
    with pytest.raises(ConfigError, match="SHA-256"):
        Authenticator.from_settings(
            Config.from_dict(
                {"server": {"api_keys_file": str(bad)}, "models": [copy_model(MODEL, "pt-en")]}
            ).server
        )


# -- API keys end to end -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    keys_file = tmp_path_factory.mktemp("auth") / "keys.sha256"
    keys_file.write_text(f"# operators' keys\n{hash_key(KEY_2)}\n{hash_key(QUOTA_KEY)}\n")
    config = make_config(
        [copy_model(MODEL, "pt-en")],
        api_keys=KEY_1,
        api_keys_file=str(keys_file),
        quota_requests_per_minute=3,
        quota_chars_per_minute=10_000,
    )
    with BackgroundServer(config) as running:
        assert running.ready
        yield running


def _translate(server, api_key=None, text="Olá."):
    with dragoman.Client(server.address, api_key=api_key, retries=0) as client:
        return client.translate(text, to="en", source="pt")[0].text


@pytest.mark.parametrize("key", [None, "wrong", KEY_1 + "x"])
def test_calls_without_a_valid_key_are_unauthenticated(auth_server, key):
    with pytest.raises(dragoman.DragomanError) as caught:
        _translate(auth_server, key)
    assert caught.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_valid_keys_from_the_list_and_the_hash_file_work(auth_server, caplog):
    with caplog.at_level(logging.DEBUG):
        assert _translate(auth_server, KEY_1) == "Olá."
        assert _translate(auth_server, KEY_2) == "Olá."
        with pytest.raises(dragoman.DragomanError):
            _translate(auth_server, "leaked-wrong-key")
    logged = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    for secret in (KEY_1, KEY_2, "leaked-wrong-key"):
        assert secret not in logged


def test_health_and_reflection_stay_open(auth_server):
    with dragoman.Client(auth_server.address) as client:
        assert client.health() == "SERVING"
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    with grpc.insecure_channel(auth_server.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        [response] = list(stub.ServerReflectionInfo(iter([request]), timeout=10))
        names = [s.name for s in response.list_services_response.service]
    assert "dragoman.v1.Dragoman" in names


def test_quota_is_resource_exhausted_with_retry_info(auth_server):
    for _ in range(3):
        assert _translate(auth_server, QUOTA_KEY) == "Olá."
    with pytest.raises(dragoman.DragomanError) as caught:
        _translate(auth_server, QUOTA_KEY)
    error = caught.value
    assert error.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "quota" in error.message
    retry = error_details_pb2.RetryInfo()
    assert any(d.Unpack(retry) for d in error.details)
    assert 10 < retry.retry_delay.seconds <= 20  # 3 a minute: the next one in ~20 s
    # Other keys have their own buckets.
    assert _translate(auth_server, KEY_1) == "Olá."


# -- TLS ----------------------------------------------------------------------------------------


def _certificates(directory):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def make(name, issuer=None, issuer_key=None, ca=False, san=None):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer.subject if issuer else subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert = builder.sign(issuer_key or key, hashes.SHA256())
        return key, cert

    def write(stem, key, cert):
        key_path, cert_path = directory / f"{stem}.key", directory / f"{stem}.pem"
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return key_path, cert_path

    ca_key, ca_cert = make("Dragoman test CA", ca=True)
    san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server = make("localhost", ca_cert, ca_key, san=san)
    client = make("test client", ca_cert, ca_key)
    other_ca_key, other_ca_cert = make("Other CA", ca=True)
    stranger = make("stranger", other_ca_cert, other_ca_key)
    return {
        "ca": write("ca", ca_key, ca_cert)[1],
        "server": write("server", *server),
        "client": write("client", *client),
        "stranger": write("stranger", *stranger),
    }


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return _certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def mtls_server(certs):
    key, cert = certs["server"]
    config = make_config(
        [copy_model(MODEL, "pt-en")],
        tls_cert=str(cert),
        tls_key=str(key),
        tls_client_ca=str(certs["ca"]),
        api_keys=KEY_1,
    )
    with BackgroundServer(config) as running:
        assert running.ready
        yield running


def test_mutual_tls_with_a_client_certificate_and_key(mtls_server, certs):
    key, cert = certs["client"]
    with dragoman.Client(
        mtls_server.address,
        api_key=KEY_1,
        root_certificates=certs["ca"],
        private_key=key,
        certificate_chain=cert,
        timeout=10,
    ) as client:
        [result] = client.translate("Olá, TLS.", to="en", source="pt")
    assert result.text == "Olá, TLS."


@pytest.mark.parametrize("who", ["no-client-cert", "stranger-cert", "plaintext"])
def test_mutual_tls_refuses_others(mtls_server, certs, who):
    kwargs = {"root_certificates": certs["ca"]}
    if who == "stranger-cert":
        kwargs["private_key"], kwargs["certificate_chain"] = certs["stranger"]
    if who == "plaintext":
        kwargs = {}
    with dragoman.Client(
        mtls_server.address, api_key=KEY_1, retries=0, timeout=3, **kwargs
    ) as client:
        with pytest.raises(dragoman.DragomanError) as caught:
            client.translate("Olá.", to="en", source="pt")
    assert caught.value.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def test_server_tls_without_client_auth(certs):
    key, cert = certs["server"]
    config = make_config([copy_model(MODEL, "pt-en")], tls_cert=str(cert), tls_key=str(key))
    with BackgroundServer(config) as running:
        with dragoman.Client(running.address, root_certificates=certs["ca"]) as client:
            assert client.translate("Olá.", to="en", source="pt")[0].text == "Olá."


def test_tls_settings_are_checked(certs, tmp_path):
    from dragoman_server.tls import server_credentials

    config = make_config([copy_model(MODEL, "pt-en")], tls_client_ca=str(certs["ca"]))
    with pytest.raises(ConfigError, match="tls_cert and tls_key"):
        server_credentials(config.server)
    config = make_config(
        [copy_model(MODEL, "pt-en")], tls_cert="/nonexistent.pem", tls_key="/nonexistent.key"
    )
    with pytest.raises(ConfigError, match="cannot read"):
        server_credentials(config.server)


def _encrypted(key_path, directory):
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    path = directory / "encrypted.key"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    return path


@pytest.mark.parametrize(
    "case, words",
    [
        ("cert-not-pem", ["tls_cert", "not a PEM file"]),
        ("key-not-pem", ["tls_key", "not a PEM file"]),
        ("garbage-pem", ["not a PEM certificate chain and its matching private key"]),
        ("key-of-another-cert", ["matching private key"]),
        ("encrypted-key", ["encrypted private key"]),
        ("ca-not-a-certificate", ["tls_client_ca", "no usable PEM CA certificate"]),
    ],
)
def test_unusable_tls_files_are_one_line_config_errors(certs, tmp_path, case, words):
    """Before: grpc only failed at bind time (or took any file); now each is named at start."""
    from dragoman_server.tls import server_credentials

    key, cert = certs["server"]
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("hello\n")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    settings = {"tls_cert": str(cert), "tls_key": str(key)}
    if case == "cert-not-pem":
        settings["tls_cert"] = str(not_pem)
    elif case == "key-not-pem":
        settings["tls_key"] = str(not_pem)
    elif case == "garbage-pem":
        settings["tls_cert"] = str(garbage)
    elif case == "key-of-another-cert":
        settings["tls_key"] = str(certs["stranger"][0])
    elif case == "encrypted-key":
        settings["tls_key"] = str(_encrypted(key, tmp_path))
    elif case == "ca-not-a-certificate":
        settings["tls_client_ca"] = str(key)  # a PEM file, but a key
    config = make_config([copy_model(MODEL, "pt-en")], **settings)
    with pytest.raises(ConfigError) as caught:
        server_credentials(config.server, config.origin)
    message = str(caught.value)
    assert "\n" not in message
    assert all(w in message for w in words), message
