"""Dragoman: a client for the Dragoman translation and summarisation service.

    from dragoman import Client

    with Client("localhost:50051") as client:
        [result] = client.translate("Olá, mundo", to="en")
        print(result.text)

``AsyncClient`` is the same with ``async`` methods. Every failed call raises ``DragomanError``.
This package needs grpcio and protobuf only; the server is the ``dragoman[server]`` extra.
"""

from dragoman._requests import __version__
from dragoman.aio import AsyncClient, AsyncSummaryStream, AsyncTranslationStream
from dragoman.client import Client, SummaryStream, TranslationStream
from dragoman.errors import DragomanError, FieldViolation, QuotaViolation
from dragoman.results import (
    GlossaryEntry,
    LanguageScore,
    ModelInfo,
    OutputFlag,
    RouteHop,
    Summary,
    SummaryChunk,
    Translation,
    TranslationChunk,
)

__all__ = [
    "AsyncClient",
    "AsyncSummaryStream",
    "AsyncTranslationStream",
    "Client",
    "DragomanError",
    "FieldViolation",
    "GlossaryEntry",
    "LanguageScore",
    "ModelInfo",
    "OutputFlag",
    "QuotaViolation",
    "RouteHop",
    "Summary",
    "SummaryChunk",
    "SummaryStream",
    "Translation",
    "TranslationChunk",
    "TranslationStream",
    "__version__",
]
