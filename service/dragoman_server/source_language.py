"""Source-language resolution: the language a caller gave, or the one detected in the text, checked
against the routes the configured models offer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from . import detection
from .errors import InvalidArgument
from .languages import base
from .router import Router

__all__ = ["DETECTION_CHARS", "Source", "SourceResolver"]

# Detection reads the start of a text: enough for a confident answer, bounded cost.
DETECTION_CHARS = 2000


@dataclass(frozen=True)
class Source:
    """A text's source language, and whether (and how surely) it was detected."""

    language: str
    detected: bool
    confidence: float


class SourceResolver:
    """Detects languages (on a worker thread) and resolves each input's source language."""

    def __init__(self, router: Router):
        self.router = router

    async def detect(self, text: str, max_results: int = 3) -> list[detection.LanguageScore]:
        return await asyncio.to_thread(detection.detect, text[:DETECTION_CHARS], max_results)

    async def resolve(self, given: str | None, text: str, field: str, target: str | None) -> Source:
        """The given language, else the detected one; InvalidArgument naming `field` when the
        detected language is unsure or has no route to `target`."""
        if given:
            return Source(given, False, 0.0)
        best = (await self.detect(text, 1))[0]
        detected = Source(best.language, True, best.confidence)
        if target is None or base(best.language) == base(target):
            return detected
        if self.router.has_route(best.language, target):
            return detected
        if best.confidence < detection.CONFIDENT:
            raise InvalidArgument(
                f"{field}: the language could not be detected reliably (best guess "
                f"{best.language!r} at {best.confidence:.2f}); set source_language"
            )
        raise InvalidArgument(
            f"{field}: detected language {best.language!r} (confidence {best.confidence:.2f}) has no "
            f"route to {target!r}; supported pairs: {', '.join(self.router.supported_pairs())}"
        )
