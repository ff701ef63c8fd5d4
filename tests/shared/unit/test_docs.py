"""Every Leadflow app serves its docs the same way (``shared/web.py``): the public app and each
service's health app answer ``/docs`` with our page, its policy, and files of our own origin;
FastAPI's CDN pages (``/redoc``, the OAuth2 redirect) are gone."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI

from services.api import create_app
from services.settings import load_settings
from shared.docs import DOCS_CSP
from shared.health import health_app
from shared.runtime import Runtime

APPS: dict[str, Callable[[Runtime], FastAPI]] = {
    "public": create_app,
    "scoring": lambda runtime: health_app("Leadflow scoring", runtime),
}
TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime = Runtime.create(load_settings(db={"url": f"sqlite+aiosqlite:///{tmp_path}/a.db"}))
    yield runtime
    await runtime.close()


@pytest.mark.parametrize("name", APPS)
async def test_the_docs_are_served_from_our_own_origin(runtime: Runtime, name: str) -> None:
    app = APPS[name](runtime)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://leadflow") as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-security-policy"] == DOCS_CSP
        assert "<script>" not in page.text and "style=" not in page.text  # nothing inline
        urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert len(urls) == 4 and all(url.startswith("/docs/static/") for url in urls), urls
        for url in urls:
            asset = await client.get(url)
            assert asset.status_code == 200, url
            suffix = PurePosixPath(urlsplit(url).path).suffix
            assert asset.headers["content-type"].startswith(TYPES[suffix]), url
        assert 'data-openapi-url="/openapi.json"' in page.text
        assert (await client.get("/openapi.json")).json()["info"]["title"] == app.title
        for gone in ("/redoc", "/docs/oauth2-redirect", "/docs/static/redoc.standalone.js"):
            assert (await client.get(gone)).status_code == 404, gone
