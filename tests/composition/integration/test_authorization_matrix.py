"""Who may call what: every route the public app serves (``services.api.create_app``: what
``leadflow dev`` and ``leadflow intake`` serve) against every kind of credential, the answer
written down per cell, on SQLite and PostgreSQL. A route added without its row, or a row left for
a route gone, fails ``test_every_route_has_a_row``.

Columns (the credentials; tests/support/authz.py makes them):
  anon   nothing
  pk     a public key (``X-API-Key``) bound to https://forms.example.com, sent from that origin
  pk@x   the same key, sent from another origin
  pk-rv  a revoked public key, from its own origin
  pk-b   the public key as ``Authorization: Bearer``
  sk     a configured secret key (``LEADFLOW_AUTH__SECRET_KEYS``: the ``admin`` caller)
  sk-db  a secret key made by ``leadflow keys create --kind secret`` (``admin`` too)
  sk-rv  such a key, revoked
  sk-rl  such a key, revoked later: after it signed in to the ops board
  mkt, sales, ops, mgr, none
         principals (``LEADFLOW_AUTH__PRINCIPALS``) holding approver:marketing, approver:sales,
         ops, manager, and no role
Keys go in headers, except on the ops pages (``/ops/…``): there a column is the session that
signing in with its key gave (``POST /ops/sign-in``, which gets the key as its form field), and a
key that could not sign in sends no cookie. The ad-platform and CRM webhooks get the key's
headers and no signature; the ``SIGNED`` table gives them their own proof instead.

Symbols:
  ok     passes authentication and authorization: neither 401 nor 403, nor sent to sign in (nor
         a 500). The request is the smallest that reaches the checks, so the answer past them
         may be a 404 (no such id) or a 422 (no body).
  401    refused, no credential (or none this route takes)
  403    refused, a credential it does not accept
  in     a page asking to sign in: 303 to /ops/sign-in
  bad    400 or 422: without its own credential (a required signature header or verify token)
         the request is malformed before anything else is checked
  204, 303
         exactly that status (a CORS preflight answered; signed out, sent to sign in again)

A cell whose answer the code still gets wrong is written as it should be and listed in
``SHOULD_BE`` (expected to fail, strictly, so fixing the code makes the entry go).
"""

# ruff: noqa: E501
# (The table is wider than a line: one row per route, one column per credential.)

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.api import create_app
from services.settings import load_settings
from shared.runtime import Runtime
from tests.support import authz
from tests.support.authz import World, matrix_world, parse_table, passes, served_routes
from tests.support.common import Database

ROUTES = """
route                                                                    anon  pk    pk@x  pk-rv pk-b  sk    sk-db sk-rv sk-rl mkt   sales ops   mgr   none
# The API's documentation, open to all
GET     /openapi.json                                                    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
GET     /docs                                                            ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
GET     /docs/static/{name}                                              ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
# Intake: posts take a public key (bound to its origins) or a secret key; reads and erasure a secret key
POST    /v1/leads                                                        401   ok    403   403   403   ok    ok    403   403   ok    ok    ok    ok    ok
OPTIONS /v1/leads                                                        403   204   403   403   403   403   403   403   403   403   403   403   403   403
GET     /v1/leads/{lead_id}                                              401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
DELETE  /v1/leads/{lead_id}                                              401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
# Webhook subscriptions (secret key)
POST    /v1/subscriptions                                                401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/subscriptions/crm-fields                                     401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/subscriptions                                                401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/subscriptions/attempts                                       401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/subscriptions/{subscription_id}                              401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
PATCH   /v1/subscriptions/{subscription_id}                              401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
DELETE  /v1/subscriptions/{subscription_id}                              401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
POST    /v1/subscriptions/{subscription_id}/rotate-secret                401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/subscriptions/{subscription_id}/messages                     401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/subscriptions/{subscription_id}/attempts                     401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
POST    /v1/subscriptions/{subscription_id}/messages/{message_id}/replay 401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
POST    /v1/subscriptions/{subscription_id}/replay                       401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
# HubSpot's webhooks: their credential is the v3 signature (SIGNED below); no key stands in for it
POST    /v1/crm/hubspot/{subscription_id}/events                         401   401   401   401   401   401   401   401   401   401   401   401   401   401
# Qualification rules (co-signed: approving needs approver:<side>; the approvals here are for marketing)
POST    /v1/rulesets/validate                                            401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
POST    /v1/rulesets                                                     401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/rulesets                                                     401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/rulesets/{version}                                           401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
POST    /v1/rulesets/{version}/approvals                                 401   401   401   401   403   403   403   403   403   ok    403   403   403   403
POST    /v1/rulesets/{version}/activate                                  401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/rulesets/{version}/diff                                      401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
POST    /v1/rulesets/{version}/backtest                                  401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/leads/{lead_id}/explain                                      401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
# Routing rules (co-signed) and the directory
POST    /v1/routing/rulesets/validate                                    401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
POST    /v1/routing/rulesets                                             401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/routing/rulesets                                             401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/routing/rulesets/{version}                                   401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
POST    /v1/routing/rulesets/{version}/approvals                         401   401   401   401   403   403   403   403   403   ok    403   403   403   403
POST    /v1/routing/rulesets/{version}/activate                          401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/routing/rulesets/{version}/diff                              401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
POST    /v1/teams                                                        401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/teams                                                        401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
POST    /v1/owners                                                       401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/owners                                                       401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/owners/{rep_id}                                              401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
POST    /v1/owners/{rep_id}/availability                                 401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
POST    /v1/owners/import                                                401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
POST    /v1/accounts                                                     401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/accounts                                                     401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
DELETE  /v1/accounts/{account_id}                                        401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
POST    /v1/leads/{lead_id}/reassign                                     401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/leads/{lead_id}/routing                                      401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
# SLA policies (co-signed) and clocks: acknowledging needs ops, manager or an admin key
POST    /v1/sla/policies/validate                                        401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
POST    /v1/sla/policies                                                 401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/sla/policies                                                 401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/sla/policies/{version}                                       401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
POST    /v1/sla/policies/{version}/approvals                             401   401   401   401   403   403   403   403   403   ok    403   403   403   403
POST    /v1/sla/policies/{version}/activate                              401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/sla/policies/{version}/diff                                  401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/sla/clocks                                                   401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/sla/clocks/{clock_id}                                        401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/sla/leads/{lead_id}/clocks                                   401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
POST    /v1/sla/clocks/{clock_id}/acknowledge                            401   401   401   401   403   ok    ok    403   403   403   403   ok    ok    403
GET     /v1/sla/breaches                                                 401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/sla/attainment                                               401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
# The ops board: pages and a session cookie, signed in with a key (POST /ops/sign-in)
GET     /ops/sign-in                                                     ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
POST    /ops/sign-in                                                     401   401   401   401   401   ok    ok    401   401   ok    ok    ok    ok    ok
POST    /ops/sign-out                                                    303   303   303   303   303   303   303   303   303   303   303   303   303   303
GET     /ops/sla                                                         in    in    in    in    in    ok    ok    in    in    ok    ok    ok    ok    ok
GET     /ops/sla/stream                                                  401   401   401   401   401   ok    ok    401   401   ok    ok    ok    ok    ok
POST    /ops/sla/clocks/{clock_id}/acknowledge                           401   401   401   401   401   ok    ok    401   401   403   403   ok    ok    403
GET     /ops/static/{name}                                               ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
# Goals (co-signed), the funnel, the plan, the monthly review
POST    /v1/goals/versions/validate                                      401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
POST    /v1/goals/versions                                               401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/goals/versions                                               401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/goals/versions/{version}                                     401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
POST    /v1/goals/versions/{version}/approvals                           401   401   401   401   403   403   403   403   403   ok    403   403   403   403
POST    /v1/goals/versions/{version}/activate                            401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/goals/versions/{version}/diff                                401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/funnel                                                       401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/funnel/attribution                                           401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/goals/progress                                               401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/plan                                                         401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/funnel/feedback                                              401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/reports/monthly/{month}                                      401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/reports/monthly/{month}/archive                              401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
# The ops console's analytics pages (the board's session)
GET     /ops/funnel                                                      in    in    in    in    in    ok    ok    in    in    ok    ok    ok    ok    ok
GET     /ops/plan                                                        in    in    in    in    in    ok    ok    in    in    ok    ok    ok    ok    ok
GET     /ops/review                                                      in    in    in    in    in    ok    ok    in    in    ok    ok    ok    ok    ok
GET     /ops/review/{month}/archive                                      in    in    in    in    in    ok    ok    in    in    ok    ok    ok    ok    ok
GET     /ops/analytics/console.css                                       ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
# Ad platforms: their credential is Google's key in the body, Meta's token or signature (SIGNED below)
POST    /v1/ingest/google-ads                                            401   401   401   401   401   401   401   401   401   401   401   401   401   401
GET     /v1/ingest/meta                                                  bad   bad   bad   bad   bad   bad   bad   bad   bad   bad   bad   bad   bad   bad
POST    /v1/ingest/meta                                                  401   401   401   401   401   401   401   401   401   401   401   401   401   401
# Engagement and outcomes, leads by email or CRM id, the quarantine (secret key)
POST    /v1/leads/{lead_id}/activities                                   401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
POST    /v1/leads/by-email/{email}/activities                            401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
POST    /v1/leads/by-crm-id/{crm_id}/activities                          401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
POST    /v1/leads/{lead_id}/outcomes                                     401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
POST    /v1/leads/by-email/{email}/outcomes                              401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
POST    /v1/leads/by-crm-id/{crm_id}/outcomes                            401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/leads/by-email/{email}                                       401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/leads/by-crm-id/{crm_id}                                     401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
GET     /v1/quarantine                                                   401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
POST    /v1/quarantine/{inquiry_id}/release                              401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
DELETE  /v1/quarantine/{inquiry_id}                                      401   401   401   401   403   ok    ok    403   403   ok    ok    ok    ok    ok
# Health and metrics, open to all
GET     /healthz                                                         ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
GET     /readyz                                                          ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
GET     /metrics                                                         ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok    ok
"""

SIGNED = """
route                                                                    valid wrong
POST    /v1/crm/hubspot/{subscription_id}/events                         ok    401
POST    /v1/ingest/google-ads                                            ok    403
GET     /v1/ingest/meta                                                  ok    403
POST    /v1/ingest/meta                                                  ok    403
"""
"""Routes whose credential is a proof of their sender's: Google's key in the body, Meta's verify
token (the handshake) or body signature, HubSpot's v3 signature; ``wrong`` is made with another
secret."""

SHOULD_BE: dict[tuple[str, str, str], str] = {}
"""(method, path, column) → why the code still answers otherwise."""

COLUMNS, TABLE = parse_table(ROUTES)
_, SIGNATURES = parse_table(SIGNED)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def _database(request: pytest.FixtureRequest) -> Database:
    """The ``db`` fixture's two databases, for a module: ``world`` is built once per database."""
    name = "pg_database" if request.param == "postgresql" else "sqlite_database"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
async def world(_database: Database) -> AsyncIterator[World]:
    """One app per database for the whole table: its cells only read, or fail before writing
    (the leads the passing posts store are the exception, and harmless)."""
    await _database.clear()
    async with matrix_world(_database) as built:
        yield built


def _cells() -> list[object]:
    cells = []
    for (method, path), row in TABLE.items():
        for column, expected in row.items():
            why = SHOULD_BE.get((method, path, column))
            marks = [pytest.mark.xfail(strict=True, reason=why)] if why else []
            cells.append(
                pytest.param(
                    method, path, column, expected, id=f"{method} {path} {column}", marks=marks
                )
            )
    return cells


@pytest.mark.parametrize(("method", "path", "column", "expected"), _cells())
async def test_cell(world: World, method: str, path: str, column: str, expected: str) -> None:
    answer = await world.send(method, path, column)
    assert passes(expected, answer), (
        f"{method} {path} as {column}: expected {expected}, got {answer.status_code} "
        f"{answer.headers.get('location', '')} {answer.text[:300]}"
    )


@pytest.mark.parametrize(
    ("method", "path", "column", "expected"),
    [
        pytest.param(method, path, column, expected, id=f"{method} {path} {column}")
        for (method, path), row in SIGNATURES.items()
        for column, expected in row.items()
    ],
)
async def test_signed_cell(
    world: World, method: str, path: str, column: str, expected: str
) -> None:
    answer = await world.send_signed(method, path, valid=column == "valid")
    assert passes(expected, answer), (
        f"{method} {path} signed {column}: expected {expected}, got {answer.status_code} "
        f"{answer.text[:300]}"
    )


async def test_every_route_has_a_row(tmp_path: Path) -> None:
    runtime = Runtime.create(load_settings(db={"url": f"sqlite+aiosqlite:///{tmp_path}/a.db"}))
    try:
        served = served_routes(create_app(runtime))
    finally:
        await runtime.close()
    rows = set(TABLE)
    assert sorted(served - rows) == [], "routes without a row in ROUTES: add them"
    assert sorted(rows - served) == [], "rows of routes the app no longer serves: remove them"
    assert set(SIGNATURES) <= rows
    assert tuple(COLUMNS) == authz.COLUMNS
