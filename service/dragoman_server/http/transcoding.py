"""HTTP/JSON transcoding of dragoman.v1, plus `/healthz` and `/readyz`."""

from __future__ import annotations

from aiohttp import web

from .middleware import endpoint


def _health_json(ctx) -> dict:
    return {
        "status": "SERVING" if ctx.health.serving() else "NOT_SERVING",
        "models": {name: e.state.value for name, e in ctx.health.registry.entries.items()},
    }


def routes(ctx) -> list[web.AbstractRouteDef]:
    @endpoint(admit=False)
    async def healthz(request: web.Request) -> web.Response:
        """Liveness: 200 while the server runs (loading included), 503 once it shuts down."""
        return web.json_response(
            _health_json(ctx), status=503 if ctx.health.shutting_down() else 200
        )

    @endpoint(admit=False)
    async def readyz(request: web.Request) -> web.Response:
        """Readiness: 200 exactly when gRPC health is SERVING, else 503."""
        return web.json_response(_health_json(ctx), status=200 if ctx.health.serving() else 503)

    return [web.get("/healthz", healthz), web.get("/readyz", readyz)]
