"""The asyncio Dragoman client: ``Client``'s API with ``async`` methods."""

# ruff: noqa: ASYNC109 - `timeout` is the gRPC deadline of the call, as in the sync Client

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

import grpc
import grpc.aio

from dragoman import _requests
from dragoman.errors import DragomanError
from dragoman.results import (
    LanguageScore,
    ModelInfo,
    Summary,
    SummaryChunk,
    Translation,
    TranslationChunk,
)
from dragoman.v1 import dragoman_pb2_grpc

__all__ = ["AsyncClient", "AsyncSummaryStream", "AsyncTranslationStream"]


class AsyncClient:
    """An asyncio client for a Dragoman server; the arguments are ``dragoman.Client``'s.

    Create it inside a running event loop and use it from that loop::

        async with AsyncClient("localhost:50051") as client:
            [result] = await client.translate("Olá, mundo", to="en")
            async for chunk in client.translate_stream(article, to="en"):
                print(chunk.text, end="")

    Every failed call raises ``DragomanError``.
    """

    def __init__(
        self,
        target: str | Iterable[str] = _requests.DEFAULT_TARGET,
        *,
        timeout: float | None = 30.0,
        api_key: str | None = None,
        tls: bool = False,
        root_certificates: bytes | str | os.PathLike | None = None,
        private_key: bytes | str | os.PathLike | None = None,
        certificate_chain: bytes | str | os.PathLike | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        retries: int = 4,
        options: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
    ) -> None:
        self._settings = _requests.channel_settings(
            target,
            timeout=timeout,
            api_key=api_key,
            tls=tls,
            root_certificates=root_certificates,
            private_key=private_key,
            certificate_chain=certificate_chain,
            credentials=credentials,
            retries=retries,
            options=options,
        )
        self.target = self._settings.target
        """The gRPC target the channel connects to."""
        options_list = list(self._settings.options)
        if self._settings.credentials is None:
            self._channel = grpc.aio.insecure_channel(self.target, options=options_list)
        else:
            self._channel = grpc.aio.secure_channel(
                self.target, self._settings.credentials, options=options_list
            )
        self._stub = dragoman_pb2_grpc.DragomanStub(self._channel)
        self._health_check = self._channel.unary_unary(
            _requests.HEALTH_CHECK_METHOD,
            request_serializer=_requests.HealthCheckRequest.SerializeToString,
            response_deserializer=_requests.HealthCheckResponse.FromString,
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncClient({self.target!r})"

    async def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        await self._channel.close()

    async def _unary(
        self,
        method: Callable[..., Any],
        request: Any,
        timeout: float | None,
        request_id: str | None,
    ) -> Any:
        kwargs = self._settings.call_args(timeout, request_id)
        try:
            return await method(request, **kwargs)
        except grpc.RpcError as error:
            raise _requests.rpc_error(error) from None
        except asyncio.CancelledError:
            _raise_unless_task_cancelled()
            raise

    async def translate(
        self,
        text_or_texts: str | Iterable[str],
        to: str,
        *,
        source: str | None = None,
        model: str | None = None,
        mime_type: str | None = None,
        glossary: Mapping[str, str | None] | Iterable[Any] | None = None,
        timeout: float | None = None,
        request_id: str | None = None,
    ) -> list[Translation]:
        """See ``Client.translate``."""
        request = _requests.translate_request(
            text_or_texts, to, source=source, model=model, mime_type=mime_type, glossary=glossary
        )
        response = await self._unary(self._stub.Translate, request, timeout, request_id)
        return _requests.translations(response)

    def translate_stream(
        self,
        text_or_texts: str | Iterable[str],
        to: str,
        *,
        source: str | None = None,
        model: str | None = None,
        mime_type: str | None = None,
        glossary: Mapping[str, str | None] | Iterable[Any] | None = None,
        timeout: float | None = None,
        request_id: str | None = None,
    ) -> AsyncTranslationStream:
        """See ``Client.translate_stream``; returns an async iterator (not a coroutine):
        ``async for chunk in client.translate_stream(...)``. ``await stream.aclose()`` (or
        leaving its ``async with`` block, or dropping it) cancels the call."""
        request = _requests.translate_request(
            text_or_texts, to, source=source, model=model, mime_type=mime_type, glossary=glossary
        )
        call = self._stub.TranslateStream(request, **self._settings.call_args(timeout, request_id))
        return AsyncTranslationStream(call)

    async def summarize(
        self,
        text: str,
        *,
        to: str | None = None,
        source: str | None = None,
        max_words: int | None = None,
        length: str | None = None,
        format: str | None = None,
        model: str | None = None,
        mime_type: str | None = None,
        timeout: float | None = None,
        request_id: str | None = None,
    ) -> Summary:
        """See ``Client.summarize``."""
        request = _requests.summarize_request(
            text,
            to=to,
            source=source,
            max_words=max_words,
            length=length,
            format=format,
            model=model,
            mime_type=mime_type,
        )
        response = await self._unary(self._stub.Summarize, request, timeout, request_id)
        return _requests.summary(response)

    def summarize_stream(
        self,
        text: str,
        *,
        to: str | None = None,
        source: str | None = None,
        max_words: int | None = None,
        length: str | None = None,
        format: str | None = None,
        model: str | None = None,
        mime_type: str | None = None,
        timeout: float | None = None,
        request_id: str | None = None,
    ) -> AsyncSummaryStream:
        """See ``Client.summarize_stream``; iterate with ``async for``."""
        request = _requests.summarize_request(
            text,
            to=to,
            source=source,
            max_words=max_words,
            length=length,
            format=format,
            model=model,
            mime_type=mime_type,
        )
        call = self._stub.SummarizeStream(request, **self._settings.call_args(timeout, request_id))
        return AsyncSummaryStream(call)

    async def detect(
        self,
        text: str,
        *,
        max_results: int | None = None,
        timeout: float | None = None,
        request_id: str | None = None,
    ) -> list[LanguageScore]:
        """See ``Client.detect``."""
        request = _requests.detect_request(text, max_results=max_results)
        response = await self._unary(self._stub.DetectLanguage, request, timeout, request_id)
        return _requests.language_scores(response)

    async def models(
        self, *, timeout: float | None = None, request_id: str | None = None
    ) -> list[ModelInfo]:
        """See ``Client.models``."""
        request = _requests.list_models_request()
        response = await self._unary(self._stub.ListModels, request, timeout, request_id)
        return _requests.model_infos(response)

    async def health(
        self, service: str = "", *, timeout: float | None = None, request_id: str | None = None
    ) -> str:
        """See ``Client.health``."""
        request = _requests.health_request(service)
        try:
            response = await self._unary(self._health_check, request, timeout, request_id)
        except DragomanError as error:
            if error.code == grpc.StatusCode.NOT_FOUND:  # Check's answer for an unknown service
                return "SERVICE_UNKNOWN"
            raise
        return _requests.health_status(response)


def _raise_unless_task_cancelled() -> None:
    """grpc.aio raises CancelledError when a call is cancelled locally (e.g. its channel was
    closed); unless it is our own task that is being cancelled, that is a DragomanError."""
    task = asyncio.current_task()
    if task is None or not task.cancelling():
        raise DragomanError(grpc.StatusCode.CANCELLED, "the call was cancelled") from None


class AsyncTranslationStream(AsyncIterator[TranslationChunk]):
    """The async iterator ``AsyncClient.translate_stream`` returns; ``cancel()`` or
    ``await aclose()`` cancels the call, after which iteration stops. An async context manager."""

    _convert = staticmethod(_requests.chunk)

    def __init__(self, call: Any) -> None:
        self._call = call
        self._closed = False

    def __aiter__(self) -> AsyncTranslationStream:
        return self

    async def __anext__(self) -> TranslationChunk:
        if self._closed:
            raise StopAsyncIteration
        try:
            message = await self._call.read()
        except grpc.RpcError as error:
            raise _requests.rpc_error(error) from None
        except asyncio.CancelledError:
            # grpc.aio raises CancelledError from a cancelled call's read(): after our own
            # cancel() that is the end of the stream; otherwise our task is being cancelled.
            if self._closed:
                raise StopAsyncIteration from None
            self._call.cancel()
            _raise_unless_task_cancelled()
            raise
        if message is grpc.aio.EOF:
            raise StopAsyncIteration
        return self._convert(message)

    def cancel(self) -> None:
        """Cancels the call; iteration stops."""
        self._closed = True
        self._call.cancel()

    async def aclose(self) -> None:
        """Cancels the call (``async with`` calls it on exit)."""
        self.cancel()

    async def __aenter__(self) -> AsyncTranslationStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class AsyncSummaryStream(AsyncTranslationStream):
    """The async iterator ``AsyncClient.summarize_stream`` returns: ``SummaryChunk``s;
    ``cancel()`` or ``await aclose()`` cancels the call. An async context manager."""

    _convert = staticmethod(_requests.summary_chunk)

    async def __anext__(self) -> SummaryChunk:  # type: ignore[override]
        return await super().__anext__()  # type: ignore[return-value]

    async def __aenter__(self) -> AsyncSummaryStream:
        return self
