"""Source-language resolution: the language a caller gave, or the one detected in the text, checked
against the routes the configured models offer."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from . import detection, tracing
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
    """Detects languages (on a worker thread) among the configured ones, and resolves each
    input's source language."""

    def __init__(self, router: Router, models: Iterable = ()):
        self.router = router
        # Candidates: every configured language (see detection.configured_languages for why).
        self.served = detection.configured_languages(models)

    async def detect(self, text: str, max_results: int = 3) -> list[detection.LanguageScore]:
        """Candidates among the configured languages (what Translate would detect)."""
        return await asyncio.to_thread(
            detection.detect, text[:DETECTION_CHARS], max_results, self.served
        )

    async def resolve(self, given: str | None, text: str, field: str, target: str | None) -> Source:
        """The given language, else the detected one; InvalidArgument naming `field` when the
        detected language is unsure (LANGUAGE_NOT_DETECTED), or is not served or has no route to
        `target` (LANGUAGE_NOT_SERVED)."""
        if given:
            return Source(given, False, 0.0)
        candidates = self.served | {target or ""} - {""}
        with tracing.span("dragoman.detect", **{"dragoman.field": field}) as span:
            found = await asyncio.to_thread(detection.identify, text[:DETECTION_CHARS], candidates)
            best = found.foreign or found.best
            if span is not None and best is not None:
                span.set_attributes(
                    {"dragoman.language": best.language, "dragoman.confidence": best.confidence}
                )
        if best is None or (found.foreign is None and best.confidence <= detection.CONFIDENT):
            guess = f" (best guess {best.language!r} at {best.confidence:.2f})" if best else ""
            raise InvalidArgument(
                f"{field}: the language could not be detected reliably{guess}; set source_language",
                reason="LANGUAGE_NOT_DETECTED",
                field=field,
            )
        detected = Source(best.language, True, best.confidence)
        if found.foreign is None and (
            target is None
            or base(best.language) == base(target)
            or self.router.has_route(best.language, target)
        ):
            return detected
        served = ", ".join(sorted(candidates))
        routes = f"has no route to {target!r}" if target else f"is not served (served: {served})"
        raise InvalidArgument(
            f"{field}: detected language {best.language!r} (confidence {best.confidence:.2f}) "
            f"{routes}; supported pairs: {', '.join(self.router.supported_pairs())}",
            reason="LANGUAGE_NOT_SERVED",
            field=field,
        )
