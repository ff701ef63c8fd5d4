"""``/docs``: Swagger UI served by Leadflow itself, so the page works without the internet and
under a strict Content-Security-Policy.

FastAPI's own ``/docs`` loads Swagger UI from a CDN and boots it with an inline script; here the
bundle and its style sheet come from the ``fastapi-offline`` package (current Swagger UI 5, no
other dependency than FastAPI), the boot script is our own file (``static/docs.js``), and the
page's policy allows script from our own origin only. ReDoc is not served: it needs inline
styles and ``blob:`` workers, and Swagger UI covers what ``/redoc`` did.
"""

from __future__ import annotations

import hashlib
from functools import cache
from html import escape
from importlib.resources import files
from importlib.resources.abc import Traversable

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from shared.pages import PAGE_CSP
from shared.problems import Problem

DOCS_URL = "/docs"
ASSETS_URL = "/docs/static"
SWAGGER_UI = files("fastapi_offline") / "static"
OURS = files("shared") / "static"
ASSETS: dict[str, tuple[Traversable, str]] = {
    "swagger-ui-bundle.js": (SWAGGER_UI, "text/javascript; charset=utf-8"),
    "swagger-ui.css": (SWAGGER_UI, "text/css; charset=utf-8"),
    "favicon.png": (SWAGGER_UI, "image/png"),
    "docs.js": (OURS, "text/javascript; charset=utf-8"),
}
# The console pages' policy, plus images from ``data:`` URLs: Swagger UI's style sheet draws its
# icons (arrows, locks, the copy button) as inline SVG data URLs. Its styles are a file of ours
# and React sets element styles through the DOM (which a policy does not block): no
# 'unsafe-inline' anywhere. Try-it-out requests go to our own origin (default-src 'self').
DOCS_CSP = PAGE_CSP + "; img-src 'self' data:; object-src 'none'"
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="{css}">
<link rel="icon" href="{favicon}" type="image/png">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{openapi}"></div>
<script src="{bundle}"></script>
<script src="{boot}"></script>
</body>
</html>
"""


def install_docs(app: FastAPI) -> None:
    """``/docs`` and its files on ``app``, which was made without FastAPI's own docs pages."""
    openapi_url = app.openapi_url or "/openapi.json"
    title = f"{app.title}: API docs"

    @app.get(DOCS_URL, include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = PAGE.format(
            title=escape(title),
            openapi=escape(root + openapi_url),
            **{key: escape(root + asset_url(name)) for key, name in _PAGE_ASSETS.items()},
        )
        return HTMLResponse(page, headers={"Content-Security-Policy": DOCS_CSP})

    @app.get(ASSETS_URL + "/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> Response:
        if name not in ASSETS:
            raise Problem(404, "Not Found", f"no file {name}", field="name")
        headers = {"Cache-Control": "public, max-age=86400"}
        return Response(_asset(name), media_type=ASSETS[name][1], headers=headers)


_PAGE_ASSETS = {
    "css": "swagger-ui.css",
    "favicon": "favicon.png",
    "bundle": "swagger-ui-bundle.js",
    "boot": "docs.js",
}


@cache
def _asset(name: str) -> bytes:
    folder, _ = ASSETS[name]
    return (folder / name).read_bytes()


@cache
def asset_url(name: str) -> str:
    """The file's URL, changed by every change of its content (so it may be cached a day)."""
    return f"{ASSETS_URL}/{name}?v={hashlib.sha256(_asset(name)).hexdigest()[:12]}"
