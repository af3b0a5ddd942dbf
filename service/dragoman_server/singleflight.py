"""Single-flight: one run of a piece of work, shared by every caller that asks for the same key
while it runs.

Each caller holds a *share*: a future of its own, answered with the work's result or error. A
caller that goes away cancels its share only; the work is cancelled when no share is held any
more, and at that moment the key is forgotten, so a caller that arrives afterwards starts a fresh
run instead of joining one that is being cancelled. A share is never cancelled because of another
caller: if the work ends cancelled anyway (e.g. the loop shutting down), the shares still held get
an error, so every caller ends with an answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Hashable
from typing import Any

from .errors import Internal

__all__ = ["Flight", "SingleFlight"]


class Flight:
    """One run of the work for one key, and the shares held on it."""

    def __init__(self, group: SingleFlight, key: Hashable, task: asyncio.Task):
        self.group = group
        self.key = key
        self.task = task
        self.holders = 0
        task.add_done_callback(self._done)

    def share(self) -> asyncio.Future:
        """A new share: a future answered when the work ends; cancelling it lets go."""
        share = self.task.get_loop().create_future()
        self.holders += 1
        self.task.add_done_callback(lambda task: _answer(share, task))
        share.add_done_callback(self._released)
        return share

    def _released(self, share: asyncio.Future) -> None:
        if not share.cancelled():
            return  # answered: the holder is done with it, the work is done too
        self.holders -= 1
        if self.holders == 0 and not self.task.done():
            # Forget the key before cancelling: whoever asks for it next starts a fresh run.
            self.group._forget(self)
            self.task.cancel()

    def _done(self, task: asyncio.Task) -> None:
        self.group._forget(self)
        if not task.cancelled():
            task.exception()  # read here: an error no holder was left to see is not "unretrieved"


class SingleFlight:
    """Runs each key's work at most once at a time; see the module docstring."""

    def __init__(self) -> None:
        self._flights: dict[Hashable, Flight] = {}

    def __len__(self) -> int:
        return len(self._flights)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._flights

    def join(self, key: Hashable) -> asyncio.Future | None:
        """A share of the run in progress for key, or None when there is none."""
        flight = self._flights.get(key)
        return flight.share() if flight is not None else None

    def start(self, key: Hashable, work: Coroutine[Any, Any, Any]) -> asyncio.Future:
        """Start the work for key (there must be no run in progress) and return the first share."""
        if key in self._flights:
            work.close()
            raise RuntimeError(f"a run for {key!r} is already in progress")
        flight = Flight(self, key, asyncio.get_running_loop().create_task(work))
        self._flights[key] = flight
        return flight.share()

    def _forget(self, flight: Flight) -> None:
        if self._flights.get(flight.key) is flight:
            del self._flights[flight.key]


def _answer(share: asyncio.Future, task: asyncio.Task) -> None:
    if share.done():
        return
    if task.cancelled():
        # Only reachable when something other than the holders cancelled the work.
        share.set_exception(Internal("the shared generation of this segment was cancelled"))
    elif task.exception() is not None:
        share.set_exception(task.exception())
    else:
        share.set_result(task.result())
