from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SummaryLength(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUMMARY_LENGTH_UNSPECIFIED: _ClassVar[SummaryLength]
    SUMMARY_LENGTH_SHORT: _ClassVar[SummaryLength]
    SUMMARY_LENGTH_MEDIUM: _ClassVar[SummaryLength]
    SUMMARY_LENGTH_LONG: _ClassVar[SummaryLength]

class SummaryFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUMMARY_FORMAT_UNSPECIFIED: _ClassVar[SummaryFormat]
    SUMMARY_FORMAT_PARAGRAPH: _ClassVar[SummaryFormat]
    SUMMARY_FORMAT_BULLETS: _ClassVar[SummaryFormat]

class Task(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_UNSPECIFIED: _ClassVar[Task]
    TASK_TRANSLATION: _ClassVar[Task]
    TASK_SUMMARIZATION: _ClassVar[Task]

class ModelState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_STATE_UNSPECIFIED: _ClassVar[ModelState]
    MODEL_STATE_LOADING: _ClassVar[ModelState]
    MODEL_STATE_READY: _ClassVar[ModelState]
    MODEL_STATE_FAILED: _ClassVar[ModelState]
SUMMARY_LENGTH_UNSPECIFIED: SummaryLength
SUMMARY_LENGTH_SHORT: SummaryLength
SUMMARY_LENGTH_MEDIUM: SummaryLength
SUMMARY_LENGTH_LONG: SummaryLength
SUMMARY_FORMAT_UNSPECIFIED: SummaryFormat
SUMMARY_FORMAT_PARAGRAPH: SummaryFormat
SUMMARY_FORMAT_BULLETS: SummaryFormat
TASK_UNSPECIFIED: Task
TASK_TRANSLATION: Task
TASK_SUMMARIZATION: Task
MODEL_STATE_UNSPECIFIED: ModelState
MODEL_STATE_LOADING: ModelState
MODEL_STATE_READY: ModelState
MODEL_STATE_FAILED: ModelState

class GlossaryEntry(_message.Message):
    __slots__ = ("source", "target")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    source: str
    target: str
    def __init__(self, source: _Optional[str] = ..., target: _Optional[str] = ...) -> None: ...

class TranslateRequest(_message.Message):
    __slots__ = ("texts", "target_language", "source_language", "model", "mime_type", "glossary")
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    TARGET_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    GLOSSARY_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    target_language: str
    source_language: str
    model: str
    mime_type: str
    glossary: _containers.RepeatedCompositeFieldContainer[GlossaryEntry]
    def __init__(self, texts: _Optional[_Iterable[str]] = ..., target_language: _Optional[str] = ..., source_language: _Optional[str] = ..., model: _Optional[str] = ..., mime_type: _Optional[str] = ..., glossary: _Optional[_Iterable[_Union[GlossaryEntry, _Mapping]]] = ...) -> None: ...

class RouteHop(_message.Message):
    __slots__ = ("model", "source_language", "target_language")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TARGET_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    model: str
    source_language: str
    target_language: str
    def __init__(self, model: _Optional[str] = ..., source_language: _Optional[str] = ..., target_language: _Optional[str] = ...) -> None: ...

class Translation(_message.Message):
    __slots__ = ("text", "source_language", "source_language_detected", "detection_confidence", "models", "route", "pivoted", "applied_glossary", "input_tokens", "output_tokens", "flags")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_LANGUAGE_DETECTED_FIELD_NUMBER: _ClassVar[int]
    DETECTION_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    PIVOTED_FIELD_NUMBER: _ClassVar[int]
    APPLIED_GLOSSARY_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    text: str
    source_language: str
    source_language_detected: bool
    detection_confidence: float
    models: _containers.RepeatedScalarFieldContainer[str]
    route: _containers.RepeatedCompositeFieldContainer[RouteHop]
    pivoted: bool
    applied_glossary: _containers.RepeatedCompositeFieldContainer[GlossaryEntry]
    input_tokens: int
    output_tokens: int
    flags: _containers.RepeatedCompositeFieldContainer[OutputFlag]
    def __init__(self, text: _Optional[str] = ..., source_language: _Optional[str] = ..., source_language_detected: _Optional[bool] = ..., detection_confidence: _Optional[float] = ..., models: _Optional[_Iterable[str]] = ..., route: _Optional[_Iterable[_Union[RouteHop, _Mapping]]] = ..., pivoted: _Optional[bool] = ..., applied_glossary: _Optional[_Iterable[_Union[GlossaryEntry, _Mapping]]] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., flags: _Optional[_Iterable[_Union[OutputFlag, _Mapping]]] = ...) -> None: ...

class OutputFlag(_message.Message):
    __slots__ = ("segment_index", "kind", "regenerated", "detail")
    SEGMENT_INDEX_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    REGENERATED_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    segment_index: int
    kind: str
    regenerated: bool
    detail: str
    def __init__(self, segment_index: _Optional[int] = ..., kind: _Optional[str] = ..., regenerated: _Optional[bool] = ..., detail: _Optional[str] = ...) -> None: ...

class TranslateResponse(_message.Message):
    __slots__ = ("translations",)
    TRANSLATIONS_FIELD_NUMBER: _ClassVar[int]
    translations: _containers.RepeatedCompositeFieldContainer[Translation]
    def __init__(self, translations: _Optional[_Iterable[_Union[Translation, _Mapping]]] = ...) -> None: ...

class TranslateStreamResponse(_message.Message):
    __slots__ = ("text_index", "paragraph_index", "text", "last", "source_language", "source_language_detected", "detection_confidence", "models", "pivoted", "flags")
    TEXT_INDEX_FIELD_NUMBER: _ClassVar[int]
    PARAGRAPH_INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LAST_FIELD_NUMBER: _ClassVar[int]
    SOURCE_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_LANGUAGE_DETECTED_FIELD_NUMBER: _ClassVar[int]
    DETECTION_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    PIVOTED_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    text_index: int
    paragraph_index: int
    text: str
    last: bool
    source_language: str
    source_language_detected: bool
    detection_confidence: float
    models: _containers.RepeatedScalarFieldContainer[str]
    pivoted: bool
    flags: _containers.RepeatedCompositeFieldContainer[OutputFlag]
    def __init__(self, text_index: _Optional[int] = ..., paragraph_index: _Optional[int] = ..., text: _Optional[str] = ..., last: _Optional[bool] = ..., source_language: _Optional[str] = ..., source_language_detected: _Optional[bool] = ..., detection_confidence: _Optional[float] = ..., models: _Optional[_Iterable[str]] = ..., pivoted: _Optional[bool] = ..., flags: _Optional[_Iterable[_Union[OutputFlag, _Mapping]]] = ...) -> None: ...

class SummarizeRequest(_message.Message):
    __slots__ = ("text", "source_language", "target_language", "max_words", "length", "model", "format", "mime_type")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    TARGET_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    MAX_WORDS_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    text: str
    source_language: str
    target_language: str
    max_words: int
    length: SummaryLength
    model: str
    format: SummaryFormat
    mime_type: str
    def __init__(self, text: _Optional[str] = ..., source_language: _Optional[str] = ..., target_language: _Optional[str] = ..., max_words: _Optional[int] = ..., length: _Optional[_Union[SummaryLength, str]] = ..., model: _Optional[str] = ..., format: _Optional[_Union[SummaryFormat, str]] = ..., mime_type: _Optional[str] = ...) -> None: ...

class SummarizeResponse(_message.Message):
    __slots__ = ("summary", "source_language", "source_language_detected", "detection_confidence", "target_language", "models", "input_tokens", "output_tokens", "path", "rounds")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_LANGUAGE_DETECTED_FIELD_NUMBER: _ClassVar[int]
    DETECTION_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    TARGET_LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    MODELS_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    summary: str
    source_language: str
    source_language_detected: bool
    detection_confidence: float
    target_language: str
    models: _containers.RepeatedScalarFieldContainer[str]
    input_tokens: int
    output_tokens: int
    path: str
    rounds: int
    def __init__(self, summary: _Optional[str] = ..., source_language: _Optional[str] = ..., source_language_detected: _Optional[bool] = ..., detection_confidence: _Optional[float] = ..., target_language: _Optional[str] = ..., models: _Optional[_Iterable[str]] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., path: _Optional[str] = ..., rounds: _Optional[int] = ...) -> None: ...

class SummarizeStreamResponse(_message.Message):
    __slots__ = ("delta", "done")
    DELTA_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    delta: str
    done: SummarizeResponse
    def __init__(self, delta: _Optional[str] = ..., done: _Optional[_Union[SummarizeResponse, _Mapping]] = ...) -> None: ...

class DetectLanguageRequest(_message.Message):
    __slots__ = ("text", "max_results")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MAX_RESULTS_FIELD_NUMBER: _ClassVar[int]
    text: str
    max_results: int
    def __init__(self, text: _Optional[str] = ..., max_results: _Optional[int] = ...) -> None: ...

class LanguageScore(_message.Message):
    __slots__ = ("language", "confidence")
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    language: str
    confidence: float
    def __init__(self, language: _Optional[str] = ..., confidence: _Optional[float] = ...) -> None: ...

class DetectLanguageResponse(_message.Message):
    __slots__ = ("languages",)
    LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    languages: _containers.RepeatedCompositeFieldContainer[LanguageScore]
    def __init__(self, languages: _Optional[_Iterable[_Union[LanguageScore, _Mapping]]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "task", "languages", "source", "state", "error", "backend", "device")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    LANGUAGES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    name: str
    task: Task
    languages: _containers.RepeatedScalarFieldContainer[str]
    source: str
    state: ModelState
    error: str
    backend: str
    device: str
    def __init__(self, name: _Optional[str] = ..., task: _Optional[_Union[Task, str]] = ..., languages: _Optional[_Iterable[str]] = ..., source: _Optional[str] = ..., state: _Optional[_Union[ModelState, str]] = ..., error: _Optional[str] = ..., backend: _Optional[str] = ..., device: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...
