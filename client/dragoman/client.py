"""The synchronous Dragoman client."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import grpc

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

__all__ = ["Client", "SummaryStream", "TranslationStream"]


class Client:
    """A synchronous client for a Dragoman server (thread-safe; one channel, many calls).

    Args:
        target: ``"host:port"``; ``"dns:///name:port"`` (round_robin over every address the
            name resolves to, re-resolved by gRPC: e.g. a Kubernetes headless service); or a list
            of ``"host:port"`` replicas (round_robin over them; names in it are resolved once,
            when the client is created). Other gRPC targets (``unix:``, ``ipv4:a:p,b:q``) as is.
        timeout: the default deadline of each call, in seconds (``None``: no deadline). Every
            method takes ``timeout=`` to override it for one call.
        api_key: sent as ``authorization: Bearer <api_key>`` metadata on every call.
        tls: use TLS with the system's root certificates (implied by any of the next three).
        root_certificates, private_key, certificate_chain: PEM bytes, PEM text or file paths;
            ``private_key`` with ``certificate_chain`` is mutual TLS.
        credentials: ready ``grpc.ChannelCredentials`` instead of the TLS arguments.
        retries: how many times a call that fails with UNAVAILABLE is retried, with exponential
            backoff (gRPC caps attempts at 5). Calls also wait for the server to be reachable
            (wait-for-ready) until their deadline; ``health()`` does not wait.
        options: extra gRPC channel options (a dict or (key, value) pairs), overriding ours.

    Every failed call raises ``DragomanError``; see ``dragoman.errors``. Use it as a context
    manager, or call ``close()``.
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
            self._channel = grpc.insecure_channel(self.target, options=options_list)
        else:
            self._channel = grpc.secure_channel(
                self.target, self._settings.credentials, options=options_list
            )
        self._stub = dragoman_pb2_grpc.DragomanStub(self._channel)
        self._health_check = self._channel.unary_unary(
            _requests.HEALTH_CHECK_METHOD,
            request_serializer=_requests.HealthCheckRequest.SerializeToString,
            response_deserializer=_requests.HealthCheckResponse.FromString,
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self.target!r})"

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled."""
        self._channel.close()

    def _unary(
        self,
        method: Callable[..., Any],
        request: Any,
        timeout: float | None,
        request_id: str | None,
    ) -> Any:
        kwargs = self._settings.call_args(timeout, request_id)
        try:
            return method(request, **kwargs)
        except grpc.RpcError as error:
            raise _requests.rpc_error(error) from None

    def translate(
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
        """Translates one text or many into ``to``; always a list, one Translation per text.

        Args:
            text_or_texts: a str, or a list of str (none may be empty).
            to: the target language ("en", "pt-BR").
            source: the source language of every text; None detects it per text.
            model: a configured model name, instead of the server's routing.
            mime_type: "text/plain" (default) or "text/html" (tags and entities are kept).
            glossary: a dict term -> translation ("" or None keeps the term as it is), or a
                list of ``GlossaryEntry``.
            timeout: this call's deadline in seconds, instead of the client's.
            request_id: sent as ``x-request-id`` metadata (shows in the server's logs).
        """
        request = _requests.translate_request(
            text_or_texts, to, source=source, model=model, mime_type=mime_type, glossary=glossary
        )
        response = self._unary(self._stub.Translate, request, timeout, request_id)
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
    ) -> TranslationStream:
        """Like ``translate``, but yields ``TranslationChunk``s paragraph by paragraph, in order.

        Joining the ``text`` of the chunks of one ``text_index`` gives that text's translation.
        ``timeout`` bounds the whole stream. Closing the returned iterator (``close()``, leaving
        its ``with`` block, or dropping it) cancels the call.
        """
        request = _requests.translate_request(
            text_or_texts, to, source=source, model=model, mime_type=mime_type, glossary=glossary
        )
        call = self._stub.TranslateStream(request, **self._settings.call_args(timeout, request_id))
        return TranslationStream(call)

    def summarize(
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
        """Summarises ``text``, in ``to`` when given (else in the text's language).

        Args:
            max_words: an upper bound on the summary's length in words (overrides ``length``).
            length: "short", "medium" (the default) or "long".
            format: "paragraph" (the default) or "bullets" (one "- " line per sentence).
            The others as for ``translate``.
        """
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
        response = self._unary(self._stub.Summarize, request, timeout, request_id)
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
    ) -> SummaryStream:
        """Like ``summarize``, but yields ``SummaryChunk``s as the summary is generated (by an
        instruction model; other models send it whole); the last chunk carries the ``Summary``.
        ``timeout`` bounds the whole stream; closing the iterator cancels the call."""
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
        return SummaryStream(call)

    def detect(
        self,
        text: str,
        *,
        max_results: int | None = None,
        timeout: float | None = None,
        request_id: str | None = None,
    ) -> list[LanguageScore]:
        """Detects the language of ``text``: candidates, most likely first (3 unless
        ``max_results`` says otherwise)."""
        request = _requests.detect_request(text, max_results=max_results)
        response = self._unary(self._stub.DetectLanguage, request, timeout, request_id)
        return _requests.language_scores(response)

    def models(
        self, *, timeout: float | None = None, request_id: str | None = None
    ) -> list[ModelInfo]:
        """Every model configured on the server, with its state, in configuration order."""
        request = _requests.list_models_request()
        response = self._unary(self._stub.ListModels, request, timeout, request_id)
        return _requests.model_infos(response)

    def health(
        self, service: str = "", *, timeout: float | None = None, request_id: str | None = None
    ) -> str:
        """The standard gRPC health check (``grpc.health.v1.Health/Check``).

        Returns "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN" (a ``service`` the server does not
        know) or "UNKNOWN". ``service`` "" is the whole server, "dragoman.v1.Dragoman" the
        service. An unreachable server raises DragomanError UNAVAILABLE at once: health checks
        do not wait for the server (though UNAVAILABLE is retried like any call).
        """
        request = _requests.health_request(service)
        try:
            response = self._unary(self._health_check, request, timeout, request_id)
        except DragomanError as error:
            if error.code == grpc.StatusCode.NOT_FOUND:  # Check's answer for an unknown service
                return "SERVICE_UNKNOWN"
            raise
        return _requests.health_status(response)


class TranslationStream(Iterator[TranslationChunk]):
    """The iterator ``Client.translate_stream`` returns; ``close()`` (or ``cancel()``) cancels
    the call, after which iteration stops. A context manager."""

    _convert = staticmethod(_requests.chunk)

    def __init__(self, call: Any) -> None:
        self._call = call
        self._closed = False

    def __iter__(self) -> TranslationStream:
        return self

    def __next__(self) -> TranslationChunk:
        if self._closed:
            raise StopIteration
        try:
            message = next(self._call)
        except grpc.RpcError as error:
            if self._closed:  # cancelled by close() from another thread
                raise StopIteration from None
            raise _requests.rpc_error(error) from None
        return self._convert(message)

    def cancel(self) -> None:
        """Cancels the call; iteration stops."""
        self._closed = True
        self._call.cancel()

    close = cancel

    def __enter__(self) -> TranslationStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class SummaryStream(TranslationStream):
    """The iterator ``Client.summarize_stream`` returns: ``SummaryChunk``s; ``close()`` (or
    ``cancel()``) cancels the call. A context manager."""

    _convert = staticmethod(_requests.summary_chunk)

    def __next__(self) -> SummaryChunk:  # type: ignore[override]
        return super().__next__()  # type: ignore[return-value]

    def __enter__(self) -> SummaryStream:
        return self
