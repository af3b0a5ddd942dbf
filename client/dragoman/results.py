"""The plain-Python results the Dragoman client returns (frozen dataclasses).

``dataclasses.asdict(result)`` turns any of them into JSON-ready dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "GlossaryEntry",
    "LanguageScore",
    "ModelInfo",
    "OutputFlag",
    "RouteHop",
    "Summary",
    "Translation",
    "TranslationChunk",
]


@dataclass(frozen=True, slots=True)
class GlossaryEntry:
    """A fixed translation for one term; an empty ``target`` keeps ``source`` as it is."""

    source: str
    target: str = ""


@dataclass(frozen=True, slots=True)
class RouteHop:
    """One hop of a translation route."""

    model: str
    source_language: str
    target_language: str


@dataclass(frozen=True, slots=True)
class OutputFlag:
    """An output check that fired on one segment of a text.

    ``kind`` is ``"repetition"``, ``"length_ratio"``, ``"numbers_mismatch"`` or
    ``"glossary_term_missing"`` (a newer server may add kinds); ``segment_index`` is the
    segment's index within its text; ``regenerated`` says the server generated the segment a
    second time with stricter decoding; ``detail`` is for people.
    """

    segment_index: int
    kind: str
    regenerated: bool = False
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Translation:
    """The translation of one text."""

    text: str
    source_language: str
    source_language_detected: bool
    detection_confidence: float
    models: list[str] = field(default_factory=list)
    route: list[RouteHop] = field(default_factory=list)
    pivoted: bool = False
    applied_glossary: dict[str, str] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    flags: list[OutputFlag] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TranslationChunk:
    """One translated paragraph of a streamed translation.

    ``text`` carries the separator that followed the paragraph in the input, so joining the
    ``text`` of every chunk of one ``text_index`` gives the whole translation.
    """

    text_index: int
    paragraph_index: int
    text: str
    last: bool
    source_language: str
    source_language_detected: bool
    detection_confidence: float
    models: list[str] = field(default_factory=list)
    pivoted: bool = False
    flags: list[OutputFlag] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Summary:
    """A summary of one text."""

    summary: str
    source_language: str
    source_language_detected: bool
    detection_confidence: float
    target_language: str
    models: list[str] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    path: str = ""
    rounds: int = 0


@dataclass(frozen=True, slots=True)
class SummaryChunk:
    """One message of ``summarize_stream``: ``delta``, the next piece of the summary as the model
    generates it; the last chunk carries ``summary``, the whole result (its ``summary.summary``
    is the text to keep: shaped to the length and format asked for, wrappers removed)."""

    delta: str
    summary: Summary | None = None


@dataclass(frozen=True, slots=True)
class LanguageScore:
    """A candidate language (ISO 639-1) and its confidence in [0, 1]."""

    language: str
    confidence: float


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A model configured on the server.

    ``task`` is ``"translation"`` or ``"summarization"``; ``state`` is ``"loading"``, ``"ready"``
    or ``"failed"`` (``error`` then says why).
    """

    name: str
    task: str
    languages: list[str]
    source: str
    state: str
    error: str
    backend: str
    device: str
