"""The article desk page at `/`: paste or drop an article, pick the target language, and watch
the translation stream in paragraph by paragraph beside the source, with the detected language,
the models, the output checks' flags and a summary.

Static files only (`static/`: HTML, CSS and plain JavaScript; no build step, nothing loaded from
elsewhere), shipped as package data. The page calls the server's own routes: `GET /languages`
(the LibreTranslate face: codes, names, targets), `POST /v1/translate:stream` (newline-delimited
JSON) and `POST /v1/summarize`, with the API key the user typed (kept in sessionStorage) as an
`Authorization: Bearer` header. The page itself is public, like any static file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from .middleware import endpoint

if TYPE_CHECKING:
    from .app import HttpContext

STATIC_DIR = Path(__file__).resolve().parent / "static"
# The page's own files are under this prefix; `/` is the page.
ASSET_PREFIX = "/desk"


@endpoint(admit=False)
async def index(request: web.Request) -> web.StreamResponse:
    """The desk page."""
    return web.FileResponse(
        STATIC_DIR / "index.html",
        headers={
            "Content-Type": "text/html; charset=utf-8",
            # The page may run only its own files: no inline script, nothing from elsewhere.
            "Content-Security-Policy": (
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
            ),
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


def routes(ctx: HttpContext) -> list[web.AbstractRouteDef]:
    """`GET /` (the page) and its files under `/desk/`."""
    return [
        web.get("/", index),
        web.static(ASSET_PREFIX, STATIC_DIR, append_version=False),
    ]
