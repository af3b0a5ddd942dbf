"""Server TLS credentials from `tls_cert`, `tls_key` and `tls_client_ca`, checked at start.

grpc only reads the files when the port is bound, and reports a bad file as a bare "could not
bind" or a BoringSSL log line. So the files are parsed here first with the standard library's
`ssl` (OpenSSL; no extra dependency): the certificate chain and key must be PEM, the key must be
unencrypted and match the certificate, and the CA file must hold at least one PEM certificate.
"""

import ssl

import grpc

from .errors import ConfigError


def _read(path: str, where: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path!r}: {exc.strerror}") from None


def _why(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    return f" ({reason.lower().replace('_', ' ')})" if reason else ""


def _no_password() -> bytes:
    raise ConfigError("encrypted")


def check_pem_files(settings, origin=lambda name: name) -> None:
    """ConfigError (one line naming the setting and its source) unless the TLS files are usable."""
    cert, key, ca = settings.tls_cert, settings.tls_key, settings.tls_client_ca
    for name, path in (("tls_cert", cert), ("tls_key", key), ("tls_client_ca", ca)):
        if path and b"-----BEGIN " not in _read(path, origin(name)):
            raise ConfigError(f"{origin(name)}: {path!r} is not a PEM file")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=_no_password)
    except ConfigError:
        raise ConfigError(
            f"{origin('tls_key')}: {key!r} is an encrypted private key; grpc needs it unencrypted"
        ) from None
    except (ssl.SSLError, ValueError) as exc:
        raise ConfigError(
            f"{origin('tls_cert')} / {origin('tls_key')}: {cert!r} and {key!r} are not a PEM "
            f"certificate chain and its matching private key{_why(exc)}"
        ) from None
    if ca:
        try:
            context.load_verify_locations(cafile=ca)
        except ssl.SSLError as exc:
            raise ConfigError(
                f"{origin('tls_client_ca')}: {ca!r} holds no usable PEM CA certificate{_why(exc)}"
            ) from None


def server_credentials(settings, origin=lambda name: name) -> grpc.ServerCredentials | None:
    """TLS credentials from tls_cert/tls_key, requiring client certificates when tls_client_ca;
    None for plaintext. ConfigError for anything unusable."""
    if not (settings.tls_cert or settings.tls_key or settings.tls_client_ca):
        return None
    if not (settings.tls_cert and settings.tls_key):
        given = [
            origin(n) for n in ("tls_cert", "tls_key", "tls_client_ca") if getattr(settings, n)
        ]
        raise ConfigError(
            f"{', '.join(given)}: TLS needs both tls_cert and tls_key "
            "(tls_client_ca alone is not enough)"
        )
    check_pem_files(settings, origin)
    pair = (
        _read(settings.tls_key, origin("tls_key")),
        _read(settings.tls_cert, origin("tls_cert")),
    )
    ca = _read(settings.tls_client_ca, origin("tls_client_ca")) if settings.tls_client_ca else None
    return grpc.ssl_server_credentials(
        [pair], root_certificates=ca, require_client_auth=ca is not None
    )
