"""API-key authentication and per-key quotas.

Keys arrive as `authorization: Bearer KEY` metadata. The server keeps only SHA-256 hashes of the
accepted keys (from `api_keys` or the hex lines of `api_keys_file`) and compares hashes with
`hmac.compare_digest`, against every accepted hash, so the time taken does not tell which key
nearly matched. Keys are never logged: logs and metrics name a key by a short hash prefix.

Quotas (`quota_requests_per_minute`, `quota_chars_per_minute`) are token buckets per key that
refill continuously; an empty bucket answers RESOURCE_EXHAUSTED with the delay after which the
call would fit (RetryInfo, via the error interceptor).
"""

import hashlib
import hmac
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError, ResourceExhausted, Unauthenticated

_HEX = re.compile(r"^[0-9a-fA-F]{64}$")


def hash_key(key: str) -> str:
    """The SHA-256 hex digest of an API key (the form `api_keys_file` holds)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def read_hashes(path: str) -> list[str]:
    """The SHA-256 hex hashes in `path`, one per line; blank lines and `#` comments are skipped."""
    try:
        lines = Path(path).read_text("utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(f"api_keys_file: cannot read {path!r}: {exc.strerror}") from None
    hashes = []
    for number, line in enumerate(lines, 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if not _HEX.match(line):
            raise ConfigError(
                f"api_keys_file: {path}:{number} is not a SHA-256 hex hash (64 hex digits)"
            )
        hashes.append(line.lower())
    return hashes


class TokenBucket:
    """`rate_per_minute` tokens a minute, holding at most one minute's worth."""

    def __init__(self, rate_per_minute: float, clock=time.monotonic):
        self.capacity = float(rate_per_minute)
        self.rate = rate_per_minute / 60.0
        self.tokens = self.capacity
        self.clock = clock
        self.updated = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def wait_for(self, amount: float) -> float:
        """Seconds until `amount` tokens are available (0: available now). Takes nothing."""
        self._refill()
        if amount <= self.tokens:
            return 0.0
        return (min(amount, self.capacity) - self.tokens) / self.rate

    def take(self, amount: float) -> None:
        self.tokens -= amount


@dataclass
class _Quota:
    requests: TokenBucket | None
    chars: TokenBucket | None


class Authenticator:
    """Checks the API key of each call and charges its quota. Thread-safe."""

    def __init__(
        self,
        hashes: Iterable[str],
        *,
        requests_per_minute: float = 0.0,
        chars_per_minute: float = 0.0,
        clock=time.monotonic,
    ):
        self.hashes = tuple(bytes.fromhex(h) for h in hashes)
        self.requests_per_minute = requests_per_minute
        self.chars_per_minute = chars_per_minute
        self.clock = clock
        self._quotas: dict[bytes, _Quota] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings) -> "Authenticator | None":
        """None when no key is configured (authentication off)."""
        hashes = [hash_key(k) for k in settings.api_keys]
        if settings.api_keys_file:
            hashes += read_hashes(settings.api_keys_file)
        if not hashes:
            if settings.quota_requests_per_minute or settings.quota_chars_per_minute:
                raise ConfigError("quotas are per API key: set api_keys or api_keys_file too")
            return None
        return cls(
            hashes,
            requests_per_minute=settings.quota_requests_per_minute,
            chars_per_minute=settings.quota_chars_per_minute,
        )

    def authenticate(self, metadata) -> bytes:
        """The matching key's hash, or Unauthenticated (which never echoes the key)."""
        header = None
        for key, value in metadata or ():
            if key == "authorization":
                header = value
                break
        if header is None:
            raise Unauthenticated("missing API key: send 'authorization: Bearer <key>' metadata")
        if isinstance(header, bytes):
            header = header.decode("utf-8", "replace")
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("malformed authorization metadata: expected 'Bearer <key>'")
        digest = hashlib.sha256(token.strip().encode("utf-8")).digest()
        found = None
        for accepted in self.hashes:  # every hash compared: timing does not depend on which
            if hmac.compare_digest(digest, accepted):
                found = accepted
        if found is None:
            raise Unauthenticated("invalid API key")
        return found

    def charge(self, key: bytes, chars: int) -> None:
        """Take one call and `chars` characters from the key's quota, or raise ResourceExhausted."""
        if not (self.requests_per_minute or self.chars_per_minute):
            return
        with self._lock:
            quota = self._quotas.get(key)
            if quota is None:
                quota = self._quotas[key] = _Quota(
                    TokenBucket(self.requests_per_minute, self.clock)
                    if self.requests_per_minute
                    else None,
                    TokenBucket(self.chars_per_minute, self.clock)
                    if self.chars_per_minute
                    else None,
                )
            waits = []
            if quota.requests:
                waits.append((quota.requests.wait_for(1), "requests"))
            if quota.chars:
                waits.append((quota.chars.wait_for(chars), "characters"))
            wait, what = max(waits)
            if wait > 0:
                limit = self.requests_per_minute if what == "requests" else self.chars_per_minute
                raise ResourceExhausted(
                    f"quota exceeded: {limit:g} {what} per minute for this API key; "
                    f"retry in {wait:.1f}s",
                    retry_after_s=wait,
                )
            if quota.requests:
                quota.requests.take(1)
            if quota.chars:
                quota.chars.take(min(chars, quota.chars.capacity))


def key_label(key: bytes | None) -> str:
    """A short, non-secret name for a key in logs and metrics."""
    return key.hex()[:8] if key else "-"


def request_chars(request) -> int:
    """The input characters of a request, for the character quota."""
    total = 0
    for name in ("texts", "text"):
        value = getattr(request, name, None)
        if value is None:
            continue
        try:
            total += len(value) if isinstance(value, str) else sum(len(t) for t in value)
        except TypeError:
            pass
    return total
