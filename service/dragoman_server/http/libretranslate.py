"""A LibreTranslate-compatible API on the HTTP server: `POST /translate`, `POST /detect`,
`GET /languages`, `GET /frontend/settings`, `GET /health`, and the features Dragoman does not
have answered as LibreTranslate answers them when they are turned off (`/translate_file`,
`/download_file`, `/suggest`, `alternatives` > 0).

Requests and responses follow LibreTranslate's own API (its `app.py` and API documentation):
- bodies are JSON or forms (urlencoded or multipart); parameters may also be in the query string;
- responses are compact JSON with sorted keys and a final newline, as Flask's `jsonify` writes
  them: `{"translatedText": ...}`, plus `detectedLanguage` (confidence 0-100) when `source` is
  `auto`; `/detect` answers `[{"confidence": ..., "language": ...}]`;
- errors are `{"error": "message"}` with LibreTranslate's status codes: 400 invalid request, 403
  API key (LibreTranslate's "banned"), 429 slow down (message prefixed `Slowdown: `), 500 failure,
  and 503 while a model is loading or the server is stopping (Dragoman's UNAVAILABLE);
- every response carries LibreTranslate's CORS headers, so browser extensions keep working.

Each request becomes the same protobuf request as the gRPC face and is validated by the same
domain code (`TranslateInput.from_pb`, `detect_input`), so limits and messages are the same; only
the parameter names in messages are LibreTranslate's (`q`, `source`, `target`, `format`).
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import TYPE_CHECKING, Any

from aiohttp import web

from dragoman.v1 import dragoman_pb2 as pb

from ..domain import TranslateInput, detect_input
from ..errors import DragomanServerError, FailedPrecondition, InvalidArgument
from ..languages import normalize
from .middleware import endpoint, request_body, request_form

if TYPE_CHECKING:
    from .app import HttpContext

# LibreTranslate's own codes for these languages (its `language.aliases`).
ALIASES = {"pb": "pt-BR", "zt": "zh-Hant"}
# LibreTranslate's defaults for what its frontend reads from /frontend/settings.
FRONTEND_TIMEOUT_MS = 500
AUTO = {"code": "auto", "name": "Auto Detect"}
# Bodies and responses larger than this are parsed and written in a worker thread, not on the
# event loop (as the transcoded routes do).
OFF_LOOP_BYTES = 256 * 1024
# How many candidates /detect returns (LibreTranslate: its detector's top 3).
DETECT_RESULTS = 3

FILES_DISABLED = "Files translation are disabled on this server."
SUGGESTIONS_DISABLED = "Suggestions are disabled on this server."

# The headers LibreTranslate adds to every response (its `after_request`).
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Expose-Headers": "Authorization",
    "Access-Control-Allow-Methods": "GET, POST",
    "Access-Control-Allow-Credentials": "true",
    "Access-Control-Max-Age": str(60 * 60 * 24 * 20),
}

# LibreTranslate's words for a refused API key (the gRPC face's mention metadata).
_KEY_MESSAGES = {
    "API_KEY_INVALID": "Invalid API key",
    "API_KEY_MALFORMED": "Invalid API key",
    "API_KEY_MISSING": "Please contact the server operator to get an API key "
    "(send it as the api_key parameter or an 'Authorization: Bearer' header)",
}

# Dragoman's field names in messages -> LibreTranslate's parameter names.
_FIELD_NAMES = (
    (re.compile(r"\btexts(?=[\[:])"), "q"),
    (re.compile(r"\btarget_language\b"), "target"),
    (re.compile(r"\bsource_language\b"), "source"),
    (re.compile(r"\bmime_type\b"), "format"),
)


def _json_bytes(data: Any) -> bytes:
    text = json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"
    return text.encode("utf-8")


def lt_json(
    data: Any, status: int = 200, headers: dict[str, str] | None = None, body: bytes | None = None
) -> web.Response:
    """A JSON response written as Flask's `jsonify` writes LibreTranslate's: compact, keys sorted,
    non-ASCII as is, a final newline; with LibreTranslate's CORS headers. `body`: `data` already
    encoded."""
    return web.Response(
        body=_json_bytes(data) if body is None else body,
        status=status,
        content_type="application/json",
        headers={**CORS_HEADERS, **(headers or {})},
    )


def lt_status(error: DragomanServerError) -> int:
    """LibreTranslate's HTTP status for a domain error."""
    if error.reason in ("FILES_TRANSLATION_DISABLED", "SUGGESTIONS_DISABLED"):
        return 403 if error.status == "FAILED_PRECONDITION" else 400
    return {
        "INVALID_ARGUMENT": 400,
        "NOT_FOUND": 400,
        # A call larger than the quota can ever allow: as LibreTranslate's "exceeds text limit".
        "FAILED_PRECONDITION": 400 if error.reason.startswith("QUOTA_") else 500,
        "UNAUTHENTICATED": 403,
        "PERMISSION_DENIED": 403,
        "RESOURCE_EXHAUSTED": 429,
        "UNAVAILABLE": 503,
        "DEADLINE_EXCEEDED": 504,
    }.get(error.status, 500)


def lt_message(error: DragomanServerError) -> str:
    """The error's message with LibreTranslate's parameter names; key errors worded as
    LibreTranslate's; 429s start with `Slowdown: ` as LibreTranslate's do."""
    message = _KEY_MESSAGES.get(error.reason, error.message)
    for pattern, name in _FIELD_NAMES:
        message = pattern.sub(name, message)
    if lt_status(error) == 429:
        message = f"Slowdown: {message}"
    return message


def render_error(error: DragomanServerError, request_id: str | None = None) -> web.Response:
    """A domain error as LibreTranslate renders errors: `{"error": message}`, its status code, and
    `Retry-After` (whole seconds) when the error has a retry delay."""
    headers = {}
    if error.retry_after_s is not None:
        headers["Retry-After"] = str(max(1, round(error.retry_after_s)))
    return lt_json({"error": lt_message(error)}, lt_status(error), headers)


def _invalid(message: str, reason: str = "INVALID_REQUEST", field: str | None = None):
    return InvalidArgument(message, reason=reason, field=field)


def _missing(name: str) -> InvalidArgument:
    return _invalid(
        f"Invalid request: missing {name} parameter", reason="PARAMETER_MISSING", field=name
    )


# Typed request keys came with aiohttp 3.12; a string key works (with a warning) before.
_PARAMS: Any = (
    web.RequestKey("dragoman_libretranslate_params", object)
    if hasattr(web, "RequestKey")
    else "dragoman_libretranslate_params"
)


def _is_json(request: web.Request) -> bool:
    # As Flask's `request.is_json`: application/json or any application/*+json.
    mime = request.content_type
    return mime == "application/json" or (
        mime.startswith("application/") and mime.endswith("+json")
    )


def _json_params(body: bytes, charset: str | None) -> dict[str, Any]:
    try:
        data = json.loads(body.decode(charset or "utf-8")) if body else None
    except (ValueError, UnicodeDecodeError, LookupError):
        raise _invalid("Invalid JSON format", reason="JSON_INVALID") from None
    if not isinstance(data, dict):
        raise _invalid("Invalid JSON format", reason="JSON_INVALID")
    return data


async def _parse_params(request: web.Request) -> dict[str, Any]:
    body = request_body(request)
    if _is_json(request):
        if len(body) > OFF_LOOP_BYTES:
            return await asyncio.to_thread(_json_params, body, request.charset)
        return _json_params(body, request.charset)
    params: dict[str, Any] = {}
    for name, value in request.query.items():
        params.setdefault(name, value)
    for name, value in (await request_form(request)).items():
        if isinstance(value, str):  # file parts have no meaning on these routes
            params.setdefault(name, value)
    return params


async def read_params(request: web.Request) -> dict[str, Any]:
    """The request's parameters as LibreTranslate reads them: a JSON object body, or form fields
    (urlencoded or multipart, `middleware.request_form`) after the query string's, the first
    value of each name. Parsed once per request (the API key source reads them first)."""
    if _PARAMS not in request:
        try:
            request[_PARAMS] = await _parse_params(request)
        except InvalidArgument as exc:
            request[_PARAMS] = exc
    params = request[_PARAMS]
    if isinstance(params, InvalidArgument):
        raise params
    return params


async def api_key_of(request: web.Request) -> str | None:
    """LibreTranslate's `api_key` parameter (used when no `Authorization` header is sent); an
    unreadable body has no key (and is refused as such)."""
    try:
        key = (await read_params(request)).get("api_key")
    except InvalidArgument:
        return None
    if key is None or key == "":
        return None
    return key if isinstance(key, str) else json.dumps(key)


def to_code(value: Any, name: str) -> str:
    """A LibreTranslate language code as Dragoman's (`pb` -> `pt-BR`); 400 naming the parameter
    when it is not a language code."""
    if not isinstance(value, str):
        raise _invalid(f"Invalid request: {name} must be a string", field=name)
    code = value.strip().lower()
    code = ALIASES.get(code, code)
    try:
        return normalize(code, name)
    except InvalidArgument as exc:
        raise _invalid(exc.message, reason="LANGUAGE_INVALID", field=name) from None


def alternatives_of(value: Any) -> int:
    """The `alternatives` parameter; Dragoman makes none, so anything above 0 is refused as
    LibreTranslate refuses it with an alternatives limit of 0."""
    try:
        count = max(0, int(value))
    except (TypeError, ValueError):
        raise _invalid(
            "Invalid request: alternatives parameter is not a number", field="alternatives"
        ) from None
    if count > 0:
        raise _invalid(
            "Invalid request: alternatives parameter must be <= 0",
            reason="ALTERNATIVES_UNSUPPORTED",
            field="alternatives",
        )
    return count


def _texts(q: Any) -> tuple[list[str], bool]:
    batch = isinstance(q, list)
    texts = q if batch else [q]
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            where = f"q[{i}]" if batch else "q"
            raise _invalid(
                f"Invalid request: {where} must be a string (q is a string or a list of strings)",
                field=where,
            )
    return texts, batch


def _renamed(error: InvalidArgument, field: str) -> InvalidArgument:
    """The error with the request field it names at its start (`texts[0]` of a single `q`;
    `text` of /detect) called `q`."""
    message = error.message
    if message.startswith(field):
        message = "q" + message[len(field) :]
    return InvalidArgument(
        message,
        reason=error.reason,
        violations=error.violations,
        metadata=error.metadata,
    )


def _confidence(value: float) -> float:
    """Dragoman's 0-1 confidence on LibreTranslate's scale: a whole number from 0 to 100."""
    return float(round(value * 100))


def _message(build):
    """A protobuf request built from the parameters; text with lone surrogates (valid in JSON,
    not in UTF-8) is an invalid request rather than a crash."""
    try:
        return build()
    except (ValueError, TypeError) as exc:
        raise _invalid(f"Invalid request: {exc}", reason="TEXT_INVALID") from None


def language_name(code: str) -> str:
    """The English name of a language code ("pt-BR" -> "Portuguese (Brazil)"), from langcodes'
    CLDR data; the code itself when the data has no name for it."""
    import langcodes

    try:
        language = langcodes.Language.get(code)
        if not language.is_valid():
            return code
        return language.display_name("en")
    except (ValueError, LookupError, ImportError):
        return code


class LibreTranslateApi:
    """The route handlers, bound to one server's context."""

    def __init__(self, ctx: HttpContext):
        self.ctx = ctx
        self.dataplane = ctx.dataplane
        self.limits = ctx.dataplane.limits
        # The routes are fixed by the configuration: the table is made once, at start.
        self.language_table = self.languages_table()

    # -- /translate -----------------------------------------------------------------------------

    async def translate(self, request: web.Request) -> web.Response:
        params = await read_params(request)
        q = params.get("q")
        source = params.get("source")
        target = params.get("target")
        if not q:
            raise _missing("q")
        if not source:
            raise _missing("source")
        if not target:
            raise _missing("target")
        alternatives_of(params.get("alternatives", 0))
        text_format = params.get("format") or "text"
        if text_format not in ("text", "html"):
            raise _invalid(
                f"{text_format} format is not supported",
                reason="FORMAT_UNSUPPORTED",
                field="format",
            )
        texts, batch = _texts(q)
        auto = isinstance(source, str) and source.strip().lower() == "auto"
        message = _message(
            lambda: pb.TranslateRequest(
                texts=texts,
                target_language=to_code(target, "target"),
                source_language="" if auto else to_code(source, "source"),
                mime_type="text/html" if text_format == "html" else "text/plain",
            )
        )
        try:
            job = TranslateInput.from_pb(message, self.limits)
            self.ctx.admission.charge(sum(len(t) for t in job.texts))
            results = await self.dataplane.translate(job)
        except InvalidArgument as exc:
            raise exc if batch else _renamed(exc, "texts[0]") from None
        translated = [r.text for r in results]
        body: dict[str, Any] = {"translatedText": translated if batch else translated[0]}
        if auto:
            detected = [
                {"confidence": _confidence(r.detection_confidence), "language": r.source_language}
                for r in results
            ]
            body["detectedLanguage"] = detected if batch else detected[0]
        if sum(len(t) for t in translated) > OFF_LOOP_BYTES // 4:
            return lt_json(None, body=await asyncio.to_thread(_json_bytes, body))
        return lt_json(body)

    # -- /detect --------------------------------------------------------------------------------

    async def detect(self, request: web.Request) -> web.Response:
        params = await read_params(request)
        q = params.get("q")
        if not q:
            raise _missing("q")
        texts, _ = _texts(q)
        # LibreTranslate pools the texts of a list into one ranking; so does one joined text.
        message = _message(
            lambda: pb.DetectLanguageRequest(text="\n".join(texts), max_results=DETECT_RESULTS)
        )
        try:
            text, max_results = detect_input(message, self.limits)
        except InvalidArgument as exc:
            raise _renamed(exc, "text") from None
        self.ctx.admission.charge(len(text))
        scores = await self.dataplane.detect(text, max_results)
        return lt_json(
            [{"confidence": _confidence(s.confidence), "language": s.language} for s in scores]
        )

    # -- /languages and /frontend/settings ----------------------------------------------------

    def languages_table(self) -> list[dict[str, Any]]:
        """Every language of the configured translation routes, each with the targets it reaches
        (directly or through the pivot language)."""
        router = self.dataplane.router
        codes = sorted(
            {
                code
                for model in self.dataplane.config.models
                if model.task == "translation"
                for pair in model.pairs
                for code in pair
            }
        )
        return [
            {
                "code": code,
                "name": language_name(code),
                "targets": [t for t in codes if t != code and router.has_route(code, t)],
            }
            for code in codes
        ]

    async def languages(self, request: web.Request) -> web.Response:
        return lt_json(self.language_table)

    def default_target(self, table: list[dict[str, Any]]) -> dict[str, str] | None:
        targets = {t for row in table for t in row["targets"]}
        if not targets:
            return None
        code = self.limits.pivot_language if self.limits.pivot_language in targets else None
        code = code or sorted(targets)[0]
        return {"code": code, "name": language_name(code)}

    async def frontend_settings(self, request: web.Request) -> web.Response:
        keys = self.ctx.admission.authenticator is not None
        table = self.language_table
        return lt_json(
            {
                "apiKeys": keys,
                "charLimit": self.limits.max_chars_per_text,
                "filesTranslation": False,
                "frontendTimeout": FRONTEND_TIMEOUT_MS,
                "keyRequired": keys,
                "language": {"source": AUTO, "target": self.default_target(table) or AUTO},
                "suggestions": False,
                "supportedFilesFormat": [],
            }
        )

    async def health(self, request: web.Request) -> web.Response:
        """LibreTranslate's health check, `{"status": "ok"}`; 503 while Dragoman does not serve
        (models loading, shutting down), as `/readyz`."""
        if self.ctx.health.serving():
            return lt_json({"status": "ok"})
        return lt_json({"status": "unavailable"}, 503)

    # -- features that are off ------------------------------------------------------------------

    async def translate_file(self, request: web.Request) -> web.Response:
        raise FailedPrecondition(FILES_DISABLED, reason="FILES_TRANSLATION_DISABLED")

    async def download_file(self, request: web.Request) -> web.Response:
        # Public route: answered here (the core renders public routes' errors in its shape).
        return render_error(InvalidArgument(FILES_DISABLED, reason="FILES_TRANSLATION_DISABLED"))

    async def suggest(self, request: web.Request) -> web.Response:
        return render_error(FailedPrecondition(SUGGESTIONS_DISABLED, reason="SUGGESTIONS_DISABLED"))

    async def preflight(self, request: web.Request) -> web.Response:
        """CORS preflight, answered as Flask answers OPTIONS for LibreTranslate's routes."""
        return web.Response(status=200, headers={**CORS_HEADERS, "Allow": "GET, POST, OPTIONS"})


# Every path of this API (the core's middleware uses the list to render its own errors, such as
# a refused API key, in LibreTranslate's shape).
PATHS = (
    "/translate",
    "/detect",
    "/languages",
    "/frontend/settings",
    "/translate_file",
    "/suggest",
)


def _declare(handler, **declared):
    """`handler` (a bound method) as a function the core's middleware can read `endpoint`
    declarations from."""

    async def route(request: web.Request) -> web.StreamResponse:
        return await handler(request)

    route.__name__ = route.__qualname__ = handler.__name__
    return endpoint(**declared)(route)


def routes(ctx: HttpContext) -> list[web.AbstractRouteDef]:
    """The LibreTranslate-compatible routes of one server. `/translate`, `/detect` and
    `/translate_file` are admitted (API key, from the header or the `api_key` parameter;
    concurrency; quota); the others are public, as in LibreTranslate. Every error, the core's
    included, is rendered in LibreTranslate's shape."""
    api = LibreTranslateApi(ctx)

    def admitted(handler):
        return _declare(handler, render_error=render_error, api_key_from=api_key_of)

    def public(handler):
        return _declare(handler, admit=False)

    table = [
        web.post("/translate", admitted(api.translate)),
        web.post("/detect", admitted(api.detect)),
        web.post("/translate_file", admitted(api.translate_file)),
        web.get("/languages", public(api.languages), allow_head=False),
        web.get("/frontend/settings", public(api.frontend_settings), allow_head=False),
        web.get("/health", public(api.health), allow_head=False),
        web.get("/download_file/{filename}", public(api.download_file), allow_head=False),
        web.post("/suggest", public(api.suggest)),
    ]
    table += [web.options(path, public(api.preflight)) for path in PATHS]
    return table
