"""Domain types: requests validated from protobuf (`from_pb`) and results turned back (`to_pb`).

Imports the generated protobuf messages only (no grpc), so the data plane stays transport-free.
"""

from dataclasses import dataclass, field

from dragoman.v1 import dragoman_pb2 as pb

from .errors import InvalidArgument
from .languages import normalize
from .output_checks import OutputFlag
from .router import Hop
from .settings import ServerSettings

MIME_TYPES = ("text/plain", "text/html")
SUMMARY_WORDS = {"short": 40, "medium": 80, "long": 160}
_LENGTHS = {
    pb.SUMMARY_LENGTH_UNSPECIFIED: "medium",
    pb.SUMMARY_LENGTH_SHORT: "short",
    pb.SUMMARY_LENGTH_MEDIUM: "medium",
    pb.SUMMARY_LENGTH_LONG: "long",
}
_FORMATS = {
    pb.SUMMARY_FORMAT_UNSPECIFIED: "paragraph",
    pb.SUMMARY_FORMAT_PARAGRAPH: "paragraph",
    pb.SUMMARY_FORMAT_BULLETS: "bullets",
}
MAX_SUMMARY_WORDS = 1000


def _mime_type(value: str) -> str:
    mime = (value or "text/plain").strip().lower()
    if mime not in MIME_TYPES:
        raise InvalidArgument(
            f"mime_type: {value!r} is not supported; use one of {MIME_TYPES}",
            reason="MIME_TYPE_UNSUPPORTED",
            field="mime_type",
        )
    return mime


def _text(value: str, field_name: str, limits: ServerSettings) -> str:
    if not value.strip():
        raise InvalidArgument(f"{field_name} is empty", reason="TEXT_EMPTY", field=field_name)
    if len(value) > limits.max_chars_per_text:
        raise InvalidArgument(
            f"{field_name} has {len(value)} characters; the limit is {limits.max_chars_per_text}",
            reason="TEXT_TOO_LONG",
            field=field_name,
            metadata={"limit": str(limits.max_chars_per_text), "chars": str(len(value))},
        )
    return value


def _language(value: str, field_name: str) -> str:
    try:
        return normalize(value, field_name)
    except InvalidArgument as exc:
        raise InvalidArgument(exc.message, reason="LANGUAGE_INVALID", field=field_name) from None


def _optional_language(value: str, field_name: str) -> str | None:
    return _language(value, field_name) if value.strip() else None


@dataclass(frozen=True)
class TranslateInput:
    """A validated Translate / TranslateStream request."""

    texts: tuple[str, ...]
    target: str
    source: str | None = None
    model: str | None = None
    mime_type: str = "text/plain"
    glossary: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_pb(cls, request: pb.TranslateRequest, limits: ServerSettings) -> "TranslateInput":
        if not request.texts:
            raise InvalidArgument(
                "texts: at least one text is required", reason="TEXT_MISSING", field="texts"
            )
        if len(request.texts) > limits.max_texts_per_request:
            raise InvalidArgument(
                f"texts: {len(request.texts)} texts in one call; the limit is "
                f"{limits.max_texts_per_request}",
                reason="TOO_MANY_TEXTS",
                field="texts",
                metadata={"limit": str(limits.max_texts_per_request)},
            )
        texts = tuple(_text(t, f"texts[{i}]", limits) for i, t in enumerate(request.texts))
        total = sum(len(t) for t in texts)
        if total > limits.max_chars_per_request:
            raise InvalidArgument(
                f"texts: {total} characters in one call; the limit is {limits.max_chars_per_request}",
                reason="REQUEST_TOO_LARGE",
                field="texts",
                metadata={"limit": str(limits.max_chars_per_request), "chars": str(total)},
            )
        if not request.target_language.strip():
            raise InvalidArgument(
                "target_language is required (e.g. 'en')",
                reason="TARGET_LANGUAGE_MISSING",
                field="target_language",
            )
        if len(request.glossary) > limits.max_glossary_entries:
            raise InvalidArgument(
                f"glossary: {len(request.glossary)} entries in one call; the limit is "
                f"{limits.max_glossary_entries}",
                reason="GLOSSARY_TOO_LARGE",
                field="glossary",
                metadata={"limit": str(limits.max_glossary_entries)},
            )
        glossary = []
        for i, entry in enumerate(request.glossary):
            if not entry.source.strip():
                raise InvalidArgument(
                    f"glossary[{i}].source is empty",
                    reason="GLOSSARY_ENTRY_INVALID",
                    field=f"glossary[{i}].source",
                )
            glossary.append((entry.source, entry.target))
        return cls(
            texts=texts,
            target=_language(request.target_language, "target_language"),
            source=_optional_language(request.source_language, "source_language"),
            model=request.model.strip() or None,
            mime_type=_mime_type(request.mime_type),
            glossary=tuple(glossary),
        )


@dataclass
class TranslationResult:
    """The translation of one text."""

    text: str
    source_language: str
    source_language_detected: bool
    detection_confidence: float
    route: list[Hop]
    applied_glossary: list[tuple[str, str]] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    flags: list[OutputFlag] = field(default_factory=list)

    @property
    def models(self) -> list[str]:
        return [h.model for h in self.route]

    def to_pb(self) -> pb.Translation:
        return pb.Translation(
            text=self.text,
            source_language=self.source_language,
            source_language_detected=self.source_language_detected,
            detection_confidence=self.detection_confidence,
            models=self.models,
            route=[
                pb.RouteHop(model=h.model, source_language=h.source, target_language=h.target)
                for h in self.route
            ],
            pivoted=len(self.route) > 1,
            applied_glossary=[
                pb.GlossaryEntry(source=s, target=t) for s, t in self.applied_glossary
            ],
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            flags=_flags_pb(self.flags),
        )


def _flags_pb(flags: list[OutputFlag]) -> list[pb.OutputFlag]:
    return [
        pb.OutputFlag(
            segment_index=f.segment_index, kind=f.kind, regenerated=f.regenerated, detail=f.detail
        )
        for f in flags
    ]


@dataclass
class ParagraphResult:
    """One streamed paragraph."""

    text_index: int
    paragraph_index: int
    text: str
    last: bool
    source_language: str
    source_language_detected: bool
    detection_confidence: float
    route: list[Hop]
    flags: list[OutputFlag] = field(default_factory=list)

    def to_pb(self) -> pb.TranslateStreamResponse:
        return pb.TranslateStreamResponse(
            text_index=self.text_index,
            paragraph_index=self.paragraph_index,
            text=self.text,
            last=self.last,
            source_language=self.source_language,
            source_language_detected=self.source_language_detected,
            detection_confidence=self.detection_confidence,
            models=[h.model for h in self.route],
            pivoted=len(self.route) > 1,
            flags=_flags_pb(self.flags),
        )


@dataclass(frozen=True)
class SummarizeInput:
    """A validated Summarize request."""

    text: str
    max_words: int
    source: str | None = None
    target: str | None = None
    model: str | None = None
    format: str = "paragraph"
    mime_type: str = "text/plain"

    @classmethod
    def from_pb(cls, request: pb.SummarizeRequest, limits: ServerSettings) -> "SummarizeInput":
        text = _text(request.text, "text", limits)
        if request.length not in _LENGTHS:
            raise InvalidArgument(
                f"length: {request.length} is not a SummaryLength value",
                reason="LENGTH_INVALID",
                field="length",
            )
        if request.format not in _FORMATS:
            raise InvalidArgument(
                f"format: {request.format} is not a SummaryFormat value",
                reason="FORMAT_INVALID",
                field="format",
            )
        if request.max_words > MAX_SUMMARY_WORDS:
            raise InvalidArgument(
                f"max_words: {request.max_words} is over the limit of {MAX_SUMMARY_WORDS}",
                reason="MAX_WORDS_TOO_LARGE",
                field="max_words",
                metadata={"limit": str(MAX_SUMMARY_WORDS)},
            )
        return cls(
            text=text,
            max_words=request.max_words or SUMMARY_WORDS[_LENGTHS[request.length]],
            source=_optional_language(request.source_language, "source_language"),
            target=_optional_language(request.target_language, "target_language"),
            model=request.model.strip() or None,
            format=_FORMATS[request.format],
            mime_type=_mime_type(request.mime_type),
        )


@dataclass
class SummaryResult:
    summary: str
    source_language: str
    source_language_detected: bool
    detection_confidence: float
    target_language: str
    models: list[str]
    input_tokens: int
    output_tokens: int
    path: str
    rounds: int

    def to_pb(self) -> pb.SummarizeResponse:
        return pb.SummarizeResponse(
            summary=self.summary,
            source_language=self.source_language,
            source_language_detected=self.source_language_detected,
            detection_confidence=self.detection_confidence,
            target_language=self.target_language,
            models=self.models,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            path=self.path,
            rounds=self.rounds,
        )


def detect_input(request: pb.DetectLanguageRequest, limits: ServerSettings) -> tuple[str, int]:
    """Validated (text, max_results) of a DetectLanguage request."""
    text = _text(request.text, "text", limits)
    if request.max_results > 100:
        raise InvalidArgument(
            f"max_results: {request.max_results} is over the limit of 100",
            reason="MAX_RESULTS_TOO_LARGE",
            field="max_results",
            metadata={"limit": "100"},
        )
    return text, request.max_results or 3
