"""Fair turns between calls: no call's size holds up another's.

Every operation of the data plane runs in a `fair_share()`: the work it queues on a model (the
static batcher's segments, the continuous batcher's requests) belongs to that call. A model's
queue is a `FairQueue`: one queue per call, served in turns, so a one-sentence call that arrives
behind a call of 4,000 segments is served in the next batch (or at the next free row), not after
the 4,000. Work queued outside any call (benchmarks, tests of a batcher alone) shares one queue,
first in, first out.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from typing import Generic, TypeVar

__all__ = ["FairQueue", "current_call", "fair_share"]

T = TypeVar("T")

_call_var: contextvars.ContextVar[Hashable | None] = contextvars.ContextVar(
    "dragoman_call", default=None
)


@contextlib.contextmanager
def fair_share() -> Iterator[None]:
    """Within this block, work queued (by this task and the tasks it starts) belongs to one call
    of its own, which takes its turn beside the other calls waiting."""
    token = _call_var.set(object())
    try:
        yield
    finally:
        try:
            _call_var.reset(token)
        except ValueError:  # ended in another context (an async generator closed elsewhere)
            pass


def current_call() -> Hashable | None:
    """The call work queued now belongs to (None outside any `fair_share`)."""
    return _call_var.get()


class FairQueue(Generic[T]):
    """Items waiting, one deque per call. The next call served is the one served least so far
    while waiting (ties: the earliest to arrive), so a call that arrives behind a big one goes
    first. Not thread-safe: its owner holds its own lock."""

    def __init__(self) -> None:
        self._calls: dict[Hashable | None, deque[T]] = {}
        self._served: dict[Hashable | None, int] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def extend(self, call: Hashable | None, items: list[T]) -> None:
        self._calls.setdefault(call, deque()).extend(items)
        self._count += len(items)

    def turns(self) -> list[tuple[Hashable | None, deque[T]]]:
        """Each call with its waiting items, the next to be served first."""
        return sorted(self._calls.items(), key=lambda entry: self._served.get(entry[0], 0))

    def take(self, call: Hashable | None, item: T) -> None:
        """Remove `item` (chosen from `turns()`) from its call's queue: the call was served."""
        items = self._calls[call]
        items.remove(item)
        self._count -= 1
        self._served[call] = self._served.get(call, 0) + 1
        if not items:
            self._forget(call)

    def remove_if(self, gone: Callable[[T], bool]) -> list[T]:
        """Remove and return every item for which `gone` is true (abandoned work)."""
        removed: list[T] = []
        for call in list(self._calls):
            items = self._calls[call]
            kept = deque(item for item in items if not gone(item))
            if len(kept) != len(items):
                removed.extend(item for item in items if gone(item))
                self._calls[call] = kept
            if not kept:
                self._forget(call)
        self._count -= len(removed)
        return removed

    def drain(self) -> list[T]:
        """Remove and return everything (shutting down)."""
        items = [item for queue in self._calls.values() for item in queue]
        self._calls, self._served, self._count = {}, {}, 0
        return items

    def _forget(self, call: Hashable | None) -> None:
        del self._calls[call]
        self._served.pop(call, None)
