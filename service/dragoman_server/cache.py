"""The translation cache: a bounded LRU of segment translations, so repeated wire copy is not
generated twice.

Keyed by (model, source language, target language, generation options, segment text): a model
change, a different pair or different generation limits never share entries. Used only on the
event loop (no lock). Size in entries (`cache_size` server setting; 0 turns it off).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

log = logging.getLogger(__name__)

LOG_EVERY = 1000  # lookups between two hit-rate log lines


class TranslationCache:
    """Bounded LRU with hit/miss counters; `stats()` for logs and metrics."""

    def __init__(self, capacity: int):
        self.capacity = max(0, capacity)
        self._data: OrderedDict[Hashable, Any] = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    def get(self, key: Hashable) -> Any | None:
        if not self.capacity:
            return None
        value = self._data.get(key)
        if value is None:
            self.misses += 1
        else:
            self._data.move_to_end(key)
            self.hits += 1
        if (self.hits + self.misses) % LOG_EVERY == 0:
            log.info(
                "translation cache: %d hits, %d misses (%.1f%% hit rate), %d/%d entries",
                self.hits,
                self.misses,
                100 * self.hit_rate,
                len(self._data),
                self.capacity,
            )
        return value

    def put(self, key: Hashable, value: Any) -> None:
        if not self.capacity:
            return
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.capacity:
            self._data.popitem(last=False)
            self.evictions += 1

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def __len__(self) -> int:
        return len(self._data)

    def stats(self) -> dict[str, float]:
        return {
            "hits": self.hits,
            "misses": self.misses,
            "hit_rate": self.hit_rate,
            "entries": len(self._data),
            "capacity": self.capacity,
            "evictions": self.evictions,
        }

    def clear(self) -> None:
        self._data.clear()
