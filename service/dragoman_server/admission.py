"""Admission control: who may call (API keys, `auth.py`), how many calls run at once
(`max_concurrent_requests`) and how much each key may send (per-key quotas).

Order for each call of the Dragoman service: authenticate, take a concurrency slot, check the
message size (all in the call interceptor, before the request is decoded), then validate (the
servicer), then
charge the quota (`Admission.charge`, called by the servicer once the request is valid: a
request rejected by validation costs nothing). Streams are admitted and charged like unary calls.

Quotas (`quota_requests_per_minute`, `quota_chars_per_minute`) are token buckets per key that
refill continuously and hold at most one minute's worth. They are kept in memory, **per server
process**: N replicas behind a load balancer allow N times the quota in all.
- a call that fits is charged in full;
- a call larger than a bucket can ever hold (more characters than `quota_chars_per_minute`) is
  FAILED_PRECONDITION, reason QUOTA_REQUEST_TOO_LARGE, with QuotaFailure: it can never succeed;
- otherwise, when the bucket is too low, RESOURCE_EXHAUSTED, reason QUOTA_EXCEEDED, with
  QuotaFailure and RetryInfo (the delay after which the call would fit).

The concurrency limit is ours rather than grpc's `maximum_concurrent_rpcs`, so that a refusal is
a normal status (RESOURCE_EXHAUSTED, reason TOO_MANY_REQUESTS, with RetryInfo) that is counted
and logged; health checks and reflection are not counted, so probes still answer under load.
"""

import contextvars
import threading
import time
from dataclasses import dataclass

from .auth import Authenticator, key_label
from .errors import FailedPrecondition, InvalidArgument, QuotaViolation, ResourceExhausted

# How long a caller refused for concurrency is asked to wait: calls take around a second here.
CONCURRENCY_RETRY_AFTER_S = 1.0

# The API key (hash) of the call being handled, set by the call interceptor; None without auth.
caller_var: contextvars.ContextVar[bytes | None] = contextvars.ContextVar(
    "dragoman_caller", default=None
)


def forget_caller(token: contextvars.Token | None) -> None:
    """Undo `caller_var.set` when a call ends (its token may belong to another context when the
    call ended there: nothing to undo then)."""
    if token is None:
        return
    try:
        caller_var.reset(token)
    except ValueError:
        pass


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
        """Seconds until `amount` tokens are available (0: now). Takes nothing.
        `amount` must not exceed the capacity."""
        self._refill()
        if amount <= self.tokens:
            return 0.0
        return (amount - self.tokens) / self.rate

    def take(self, amount: float) -> None:
        self.tokens -= amount


@dataclass
class _KeyQuota:
    requests: TokenBucket | None
    chars: TokenBucket | None


class Quotas:
    """Per-key token buckets for calls and input characters. Thread-safe."""

    def __init__(
        self,
        requests_per_minute: float = 0.0,
        chars_per_minute: float = 0.0,
        clock=time.monotonic,
    ):
        self.requests_per_minute = requests_per_minute
        self.chars_per_minute = chars_per_minute
        self.clock = clock
        self._buckets: dict[bytes, _KeyQuota] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.requests_per_minute or self.chars_per_minute)

    def _bucket(self, rate: float) -> TokenBucket | None:
        return TokenBucket(rate, self.clock) if rate else None

    def charge(self, key: bytes, chars: int) -> None:
        """Take one call and `chars` characters from `key`'s buckets, or raise (and take nothing)."""
        if not self.enabled:
            return
        subject = f"key:{key_label(key)}"
        if self.chars_per_minute and chars > self.chars_per_minute:
            raise FailedPrecondition(
                f"quota: this call has {chars} characters, more than the "
                f"{self.chars_per_minute:g} characters per minute this API key may send; "
                "split it into smaller calls",
                reason="QUOTA_REQUEST_TOO_LARGE",
                quota_violations=(
                    QuotaViolation(
                        subject,
                        f"{chars} characters in one call; the quota is "
                        f"{self.chars_per_minute:g} characters per minute",
                    ),
                ),
                metadata={"quota": "chars_per_minute", "limit": f"{self.chars_per_minute:g}"},
            )
        with self._lock:
            quota = self._buckets.get(key)
            if quota is None:
                quota = self._buckets[key] = _KeyQuota(
                    self._bucket(self.requests_per_minute), self._bucket(self.chars_per_minute)
                )
            exceeded = []
            if quota.requests and (wait := quota.requests.wait_for(1)) > 0:
                exceeded.append((wait, "requests_per_minute", self.requests_per_minute, "calls"))
            if quota.chars and (wait := quota.chars.wait_for(chars)) > 0:
                exceeded.append((wait, "chars_per_minute", self.chars_per_minute, "characters"))
            if not exceeded:
                if quota.requests:
                    quota.requests.take(1)
                if quota.chars:
                    quota.chars.take(chars)
                return
        wait, name, limit, unit = max(exceeded)
        raise ResourceExhausted(
            f"quota exceeded: {limit:g} {unit} per minute for this API key; retry in {wait:.1f}s",
            reason="QUOTA_EXCEEDED",
            retry_after_s=wait,
            quota_violations=tuple(
                QuotaViolation(subject, f"{lim:g} {u} per minute") for _, _, lim, u in exceeded
            ),
            metadata={"quota": name, "limit": f"{limit:g}"},
        )


class ConcurrencyLimit:
    """At most `limit` calls at once (0: no limit). Used from the event loop only."""

    def __init__(self, limit: int):
        self.limit = limit
        self.active = 0

    def acquire(self) -> None:
        if self.limit and self.active >= self.limit:
            raise ResourceExhausted(
                f"too many concurrent calls: max_concurrent_requests is {self.limit}; "
                f"retry in {CONCURRENCY_RETRY_AFTER_S:g}s",
                reason="TOO_MANY_REQUESTS",
                retry_after_s=CONCURRENCY_RETRY_AFTER_S,
                metadata={"limit": str(self.limit)},
            )
        self.active += 1

    def release(self) -> None:
        self.active -= 1


class Admission:
    """Authentication, the concurrency limit and quotas, for one server."""

    def __init__(
        self,
        authenticator: Authenticator | None = None,
        quotas: Quotas | None = None,
        max_concurrent: int = 0,
        max_message_bytes: int = 0,
    ):
        self.authenticator = authenticator
        self.quotas = quotas or Quotas()
        self.concurrency = ConcurrencyLimit(max_concurrent)
        self.max_message_bytes = max_message_bytes

    @classmethod
    def from_config(cls, config) -> "Admission":
        settings = config.server
        origin = getattr(config, "origin", lambda name: name)
        return cls(
            Authenticator.from_settings(settings, origin),
            Quotas(settings.quota_requests_per_minute, settings.quota_chars_per_minute),
            settings.max_concurrent_requests,
            settings.max_message_bytes,
        )

    def authenticate(self, metadata) -> bytes | None:
        """The caller's key hash (None when auth is off), or Unauthenticated."""
        if self.authenticator is None:
            return None
        return self.authenticator.authenticate(metadata)

    def check_size(self, size: int) -> None:
        """InvalidArgument (MESSAGE_TOO_LARGE) for a request message over `max_message_bytes`."""
        if self.max_message_bytes and size > self.max_message_bytes:
            raise InvalidArgument(
                f"the request message has {size} bytes; max_message_bytes is "
                f"{self.max_message_bytes}: split the texts into several calls",
                reason="MESSAGE_TOO_LARGE",
                metadata={"limit": str(self.max_message_bytes), "bytes": str(size)},
            )

    def charge(self, chars: int) -> None:
        """Charge the current call (one call, `chars` input characters) to its key's quota.
        The servicer calls this once the request is valid."""
        key = caller_var.get()
        if key is not None:
            self.quotas.charge(key, chars)
