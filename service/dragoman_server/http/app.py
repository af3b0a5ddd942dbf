"""The HTTP application: `HttpContext` (what route modules may use), `build_app` (the shared
middleware plus the routes of every module in `ROUTE_MODULES`) and `HttpServer` (listening,
TLS, graceful shutdown).

A route module exposes `routes(ctx: HttpContext) -> list[aiohttp.web.AbstractRouteDef]`;
a module of `ROUTE_MODULES` that does not exist (not built yet) is skipped. Handlers may be
declared with `middleware.endpoint(...)` (a route name, a per-route error renderer, an API-key
source besides the `Authorization` header, or `admit=False` for public routes).
"""

from __future__ import annotations

import importlib
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .middleware import CONTEXT_KEY, dragoman_middleware, on_response_prepare

log = logging.getLogger(__name__)

ROUTE_MODULES = (
    "dragoman_server.http.transcoding",
    "dragoman_server.http.libretranslate",
    "dragoman_server.http.desk",
)


@dataclass(frozen=True)
class HealthView:
    """What the HTTP face knows of health: `serving()` is True exactly when gRPC health says
    SERVING (models loaded, not shutting down); `shutting_down()` once stop() began."""

    serving: Callable[[], bool]
    shutting_down: Callable[[], bool]
    registry: Any  # registry.ModelRegistry


@dataclass
class HttpContext:
    """Everything a route module may use; one per server."""

    dataplane: Any  # dataplane.DataPlane
    admission: Any  # admission.Admission
    metrics: Any  # metrics.Metrics, or None
    settings: Any  # settings.ServerSettings
    health: HealthView
    servicer: Any = None  # servicer.DragomanServicer: the one code path of the RPCs


def _route_module(name: str):
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:  # the module exists but something it imports does not
            raise
        return None


def build_app(ctx: HttpContext) -> web.Application:
    """The aiohttp application: shared middleware, then every route module's routes."""
    app = web.Application(
        middlewares=[dragoman_middleware],
        # The body limit is the admission layer's (MESSAGE_TOO_LARGE); aiohttp's own is set
        # above it so that the middleware reads (and refuses) the body itself.
        client_max_size=ctx.settings.max_message_bytes + 1,
    )
    app[CONTEXT_KEY] = ctx
    app.on_response_prepare.append(on_response_prepare)
    for name in ROUTE_MODULES:
        module = _route_module(name)
        if module is None:
            log.debug("HTTP route module %s is not there; skipped", name)
            continue
        app.router.add_routes(module.routes(ctx))
    return app


def server_ssl_context(settings) -> ssl.SSLContext | None:
    """The TLS context of tls_cert/tls_key (client certificates required with tls_client_ca);
    None for plaintext. The files were already checked by `tls.server_credentials`."""
    if not (settings.tls_cert and settings.tls_key):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    if settings.tls_client_ca:
        context.load_verify_locations(cafile=settings.tls_client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


class HttpServer:
    """The HTTP listener of one DragomanServer."""

    def __init__(self, ctx: HttpContext):
        self.ctx = ctx
        self.app = build_app(ctx)
        settings = ctx.settings
        self.host = settings.http_host or settings.host
        self.ssl_context = server_ssl_context(settings)
        self.runner = web.AppRunner(
            self.app,
            # A caller that disconnects cancels its handler, and so its queued segments.
            handler_cancellation=True,
            access_log=None,  # ours is the access log (one line per call, as for gRPC)
            shutdown_timeout=settings.grace_period_s,
        )
        self.port: int | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.ssl_context else "http"

    async def start(self) -> int:
        """Listen; returns the bound port."""
        await self.runner.setup()
        site = web.TCPSite(
            self.runner,
            self.host,
            self.ctx.settings.http_port,
            ssl_context=self.ssl_context,
            reuse_port=False,
        )
        try:
            await site.start()
        except OSError as exc:
            await self.runner.cleanup()
            raise OSError(
                f"cannot listen on {self.host}:{self.ctx.settings.http_port} for HTTP: "
                f"{exc.strerror or exc}"
            ) from None
        self.port = self.runner.addresses[0][1]
        log.info("HTTP on %s://%s:%d", self.scheme, self.host, self.port)
        return self.port

    def abort(self) -> None:
        """Close every connection now: their handlers are cancelled (a second SIGTERM)."""
        server = self.runner.server
        for connection in list(server.connections if server is not None else ()):
            connection.force_close()

    async def stop(self, grace: float) -> None:
        """Refuse new connections; let in-flight requests finish within `grace` seconds."""
        # aiohttp takes the timeout at construction only; this stop() call's grace wins.
        self.runner._shutdown_timeout = grace
        await self.runner.cleanup()
