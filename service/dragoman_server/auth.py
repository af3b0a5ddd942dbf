"""API-key authentication. Fails closed: a key source that is configured but yields no key is a
start-up error, never a server without authentication.

Keys arrive as `authorization: Bearer KEY` metadata. The scheme is matched case-insensitively
(`bearer` works) and any run of spaces or tabs may separate it from the key; the key itself is
stripped. The server keeps only SHA-256 hashes of the accepted keys (from `api_keys` or the hex
lines of `api_keys_file`) and compares hashes with `hmac.compare_digest`, against every accepted
hash, so the time taken does not tell which key nearly matched. Keys are never logged: logs and
metrics name a key by a short hash prefix.
"""

import hashlib
import hmac
import re
from collections.abc import Iterable
from pathlib import Path

from .errors import ConfigError, Unauthenticated

_HEX = re.compile(r"^[0-9a-fA-F]{64}$")
# gRPC metadata values are printable ASCII; a key with spaces or control characters inside is a
# pasting mistake (two keys run together, a stray newline) that no client could send anyway.
KEY_PATTERN = re.compile(r"^[\x21-\x7e]+$")
_BEARER = re.compile(r"^\s*bearer[ \t]+(\S+)\s*$", re.IGNORECASE)


def hash_key(key: str) -> str:
    """The SHA-256 hex digest of an API key (the form `api_keys_file` holds)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def check_key(key: str, where: str) -> str:
    """The key, stripped; ConfigError naming `where` (never the key) if it cannot be a key."""
    key = key.strip()
    if not KEY_PATTERN.match(key):
        raise ConfigError(
            f"{where}: an API key must be printable ASCII with no spaces or control characters"
        )
    return key


def read_hashes(path: str, where: str = "api_keys_file") -> list[str]:
    """The SHA-256 hex hashes in `path`, one per line; blank lines and `#` comments are skipped.
    A file that holds no hash is a ConfigError: auth must not silently turn off."""
    try:
        lines = Path(path).read_text("utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: {path!r} is not UTF-8 text") from None
    hashes = []
    for number, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if not _HEX.match(line):
            raise ConfigError(f"{where}: {path}:{number} is not a SHA-256 hex hash (64 hex digits)")
        hashes.append(line.lower())
    if not hashes:
        raise ConfigError(
            f"{where}: {path!r} holds no key hash (one SHA-256 hex hash per line is required; "
            "remove the setting to run without authentication)"
        )
    return hashes


class Authenticator:
    """Checks the API key of each call. Thread-safe (immutable)."""

    def __init__(self, hashes: Iterable[str]):
        self.hashes = tuple(dict.fromkeys(bytes.fromhex(h) for h in hashes))
        if not self.hashes:
            raise ValueError("an Authenticator needs at least one key hash")

    @classmethod
    def from_settings(cls, settings, origin=lambda name: name) -> "Authenticator | None":
        """None when no key source is configured (authentication off); ConfigError when one is
        configured but yields no valid key. `origin(name)` names where a setting came from."""
        hashes = [
            hash_key(check_key(k, f"{origin('api_keys')} [{i}]"))
            for i, k in enumerate(settings.api_keys)
        ]
        if settings.api_keys_file:
            hashes += read_hashes(settings.api_keys_file, origin("api_keys_file"))
        if not hashes:
            if settings.quota_requests_per_minute or settings.quota_chars_per_minute:
                raise ConfigError("quotas are per API key: set api_keys or api_keys_file too")
            return None
        return cls(hashes)

    def authenticate(self, metadata) -> bytes:
        """The matching key's hash, or Unauthenticated (which never echoes the key)."""
        header = None
        for key, value in metadata or ():
            if key == "authorization":
                header = value
                break
        if header is None:
            raise Unauthenticated(
                "missing API key: send 'authorization: Bearer <key>' metadata",
                reason="API_KEY_MISSING",
            )
        if isinstance(header, bytes):
            header = header.decode("utf-8", "replace")
        match = _BEARER.match(header)
        if match is None:
            raise Unauthenticated(
                "malformed authorization metadata: expected 'Bearer <key>'",
                reason="API_KEY_MALFORMED",
            )
        digest = hashlib.sha256(match.group(1).encode("utf-8")).digest()
        found = None
        for accepted in self.hashes:  # every hash compared: timing does not depend on which
            if hmac.compare_digest(digest, accepted):
                found = accepted
        if found is None:
            raise Unauthenticated("invalid API key", reason="API_KEY_INVALID")
        return found


def key_label(key: bytes | None) -> str:
    """A short, non-secret name for a key in logs and metrics."""
    return key.hex()[:8] if key else "-"
