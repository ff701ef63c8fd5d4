"""Every HTML answer of the public app carries the security headers (no browser needed: plain
HTTP against the real server, beside the pages' browser tests).

Each GET route of the app is asked, signed out and then signed in (the console's session cookie
and a secret key), with sample path parameters; the answers that are ``text/html`` must carry a
Content-Security-Policy that names no other origin and allows no inline or eval'd script,
``nosniff``, a Referrer-Policy and ``X-Frame-Options: DENY``. The pages known today must be
among them, so the walk cannot quietly stop finding pages."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from uuid import uuid4

import fastapi.routing
import httpx
import pytest
from fastapi import FastAPI

from services.api import create_app
from shared.runtime import Runtime
from tests.browser.conftest import serving
from tests.support.common import Database, make_settings

OPS_KEY = "ops-key-headers-0123456789abcdef0123456"
PRINCIPALS = [{"name": "ops-hal", "key": OPS_KEY, "roles": ["ops"]}]
SECRET_KEY = "sk_test"
KNOWN_PAGES = {
    "/docs",
    "/ops/sign-in",
    "/ops/sla",
    "/ops/funnel",
    "/ops/plan",
    "/ops/review",
    "/v1/reports/monthly/{month}",
}
PARAMETER = re.compile(r"\{(\w+)(?::(\w+))?\}")


@pytest.fixture
async def runtime(sqlite_database: Database) -> AsyncIterator[Runtime]:
    await sqlite_database.clear()
    settings = make_settings(
        sqlite_database, auth={"secret_keys": [SECRET_KEY], "principals": PRINCIPALS}
    )
    runtime = Runtime.create(settings)
    yield runtime
    await runtime.close()


def get_routes(app: FastAPI) -> Iterator[str]:
    """The paths of the app's GET routes, in the routers it includes too (FastAPI ≥ 0.130 keeps
    included routers whole in ``app.routes``; ``iter_route_contexts`` opens them)."""
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    for route in flatten(app.routes) if flatten else app.routes:
        methods = getattr(route, "methods", None)
        if methods and "GET" in methods:
            yield route.path


def sample(path: str) -> str:
    """``path`` with a value for each parameter (a month for months, a UUID for UUIDs…)."""

    def value(match: re.Match[str]) -> str:
        name, convertor = match.groups()
        if convertor == "uuid":
            return str(uuid4())
        if convertor == "int":
            return "1"
        return {"month": "2026-03", "email": "ada@example.com"}.get(name, "x")

    return PARAMETER.sub(value, path)


async def html_answers(client: httpx.AsyncClient, paths: list[str]) -> dict[str, httpx.Headers]:
    """Each path's answer's headers, for the answers that are HTML (headers only: the SLA
    board's event stream never ends)."""
    found = {}
    for path in paths:
        async with client.stream("GET", sample(path)) as answer:
            assert answer.headers.get("x-content-type-options") == "nosniff", path
            if answer.headers.get("content-type", "").startswith("text/html"):
                found[path] = answer.headers
    return found


def check(path: str, headers: httpx.Headers) -> None:
    policy = {
        directive.split()[0]: directive.split()[1:]
        for directive in headers.get("content-security-policy", "").split(";")
        if directive.strip()
    }
    assert policy, f"{path}: no Content-Security-Policy"
    sources = [source for values in policy.values() for source in values]
    assert not [s for s in sources if "." in s or "*" in s or s.startswith("http")], path
    script = policy.get("script-src", policy.get("default-src", []))
    assert script and not {"'unsafe-inline'", "'unsafe-eval'"} & set(script), path
    assert headers.get("x-frame-options") == "DENY", path
    assert headers.get("referrer-policy") in {"same-origin", "no-referrer"}, path


async def test_every_html_answer_carries_the_security_headers(runtime: Runtime) -> None:
    app = create_app(runtime)
    paths = list(get_routes(app))
    async with serving(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as client:
        signed_out = await html_answers(client, paths)
        signed_in = await client.post("/ops/sign-in", data={"key": OPS_KEY})
        assert signed_in.status_code == 303 and client.cookies, signed_in.text
        client.headers["Authorization"] = f"Bearer {SECRET_KEY}"
        pages = signed_out | await html_answers(client, paths)

    assert KNOWN_PAGES <= pages.keys(), KNOWN_PAGES - pages.keys()
    for path, headers in pages.items():
        check(path, headers)


async def test_lead_posts_answered_ahead_of_the_router_carry_nosniff(runtime: Runtime) -> None:
    """``POST /v1/leads`` is served ahead of the app's middleware (intake's hot path): its
    answers, accepted or refused, still say ``nosniff``."""
    app = create_app(runtime)
    async with serving(app) as base, httpx.AsyncClient(base_url=base, timeout=10) as client:
        anonymous = await client.post("/v1/leads", json={"email": "ada@example.com"})
        client.headers["Authorization"] = f"Bearer {SECRET_KEY}"
        accepted = await client.post("/v1/leads", json={"email": "ada@example.com"})
        refused = await client.post("/v1/leads", json={"email": "not an address"})
    answers = (anonymous, accepted, refused)
    assert [a.status_code for a in answers] == [401, 202, 422], answers
    for answer in answers:
        assert answer.headers.get("x-content-type-options") == "nosniff", answer.headers
