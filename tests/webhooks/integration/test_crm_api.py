"""CRM subscriptions (HubSpot, Salesforce) through ``/v1/subscriptions`` (ASGI), on both
databases: settings merged with their defaults, secrets held but never shown, refusals that name
the offending field and store nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from services.api import create_app
from services.webhooks.crm.config import (
    HUBSPOT_PROPERTIES,
    HUBSPOT_STAGES,
    SALESFORCE_FIELDS,
    SALESFORCE_STATUSES,
    hubspot_inbound,
)
from shared.runtime import Runtime
from tests.support.common import Database
from tests.support.webhooks import subscription, webhook_settings

AUTH = {"Authorization": "Bearer sk_test"}
TOKEN, APP_SECRET = f"pat-eu1-{uuid4().hex}", f"app-{uuid4().hex}"
NEW_TOKEN, CLIENT_SECRET = f"pat-eu1-{uuid4().hex}", f"sf-{uuid4().hex}"
SECRETS = (TOKEN, APP_SECRET, NEW_TOKEN, CLIENT_SECRET)
LOCAL = "http://127.0.0.1:9"  # a CRM API on this machine (allowed: 127.0.0.0/8)
ANA = "41629779"
SF_USER = "0055e000001AbCdAAK"


def hubspot_settings(**changes: Any) -> dict[str, Any]:
    return {
        "base_url": LOCAL,
        "owners": {"Ana@Example.com": ANA},
        "properties": {"attribution.utm.campaign": "leadflow_campaign"},
        **changes,
    }


def hubspot_body(**changes: Any) -> dict[str, Any]:
    return {
        "kind": "hubspot",
        "hubspot": hubspot_settings(),
        "credentials": {"token": TOKEN, "app_secret": APP_SECRET},
        "description": "HubSpot portal",
        **changes,
    }


def salesforce_settings(**changes: Any) -> dict[str, Any]:
    return {
        "login_url": LOCAL,
        "client_id": "3MVG9test",
        "owners": {"ana@example.com": SF_USER},
        "fields": {"attribution.utm.campaign": "Campaign__c"},
        **changes,
    }


def salesforce_body(**changes: Any) -> dict[str, Any]:
    return {
        "kind": "salesforce",
        "salesforce": salesforce_settings(),
        "credentials": {"client_secret": CLIENT_SECRET},
        **changes,
    }


def app_client(runtime: Runtime) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(runtime))
    return httpx.AsyncClient(transport=transport, base_url="http://leadflow", headers=AUTH)


@pytest.fixture
async def api(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    runtime = Runtime(settings=webhook_settings(db), engine=db.engine, sessions=db.sessions)
    async with app_client(runtime) as client:
        yield client


def no_secret_in(*responses: httpx.Response) -> None:
    for response in responses:
        for secret in SECRETS:
            assert secret not in response.text, (secret, response.text)


def assert_problem(response: httpx.Response, status: int, *named: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    for name in named:
        assert name in problem["detail"], (name, problem)
    return problem


async def test_a_hubspot_subscription_shows_its_merged_settings_never_its_secrets(
    api: httpx.AsyncClient, db: Database
) -> None:
    created = await api.post("/v1/subscriptions", json=hubspot_body())

    assert created.status_code == 201, created.text
    view = created.json()
    sid = view["id"]
    assert created.headers["location"] == f"/v1/subscriptions/{sid}"
    assert (view["kind"], view["url"], view["event_types"]) == (
        "hubspot",
        LOCAL,
        ["lead.qualified"],
    )
    assert view["hubspot"]["properties"] == {
        **HUBSPOT_PROPERTIES,
        "attribution.utm.campaign": "leadflow_campaign",
    }
    assert view["hubspot"]["owners"] == {"ana@example.com": ANA}
    assert view["hubspot"]["stages"] == HUBSPOT_STAGES
    inbound = {p: {v: r.model_dump() for v, r in rules.items()} for p, rules in
               hubspot_inbound().items()}  # fmt: skip
    assert view["hubspot"]["inbound"] == inbound
    assert view["credentials"] == ["app_secret", "token"]
    assert view["inbound_path"] == f"/v1/crm/hubspot/{sid}/events"
    assert view["salesforce"] is None and view["consent_flags"] is None
    shown = await api.get(f"/v1/subscriptions/{sid}")
    listed = await api.get("/v1/subscriptions")
    assert shown.status_code == 200 and listed.status_code == 200
    assert {k: v for k, v in view.items() if k != "secret"} == shown.json() == listed.json()[0]
    patched = await api.patch(f"/v1/subscriptions/{sid}", json={"description": "EU portal"})
    assert patched.status_code == 200 and patched.json()["credentials"] == ["app_secret", "token"]
    no_secret_in(created, shown, listed, patched)
    stored = await subscription(db, UUID(sid))
    assert stored.credentials == {"token": TOKEN, "app_secret": APP_SECRET}  # held, not shown


async def test_a_salesforce_subscription_needs_its_client_secret(
    api: httpx.AsyncClient, db: Database
) -> None:
    refused = await api.post("/v1/subscriptions", json=salesforce_body(credentials=None))
    assert_problem(refused, 422, "credentials.client_secret")

    created = await api.post("/v1/subscriptions", json=salesforce_body())

    assert created.status_code == 201, created.text
    view = created.json()
    assert (view["kind"], view["url"], view["event_types"]) == (
        "salesforce",
        LOCAL,
        ["lead.qualified"],
    )
    assert view["salesforce"]["fields"] == {
        **SALESFORCE_FIELDS,
        "attribution.utm.campaign": "Campaign__c",
    }
    assert view["salesforce"]["statuses"] == SALESFORCE_STATUSES
    assert view["salesforce"]["owners"] == {"ana@example.com": SF_USER}
    assert view["credentials"] == ["client_secret"] and view["inbound_path"] is None
    assert view["hubspot"] is None
    shown = await api.get(f"/v1/subscriptions/{view['id']}")
    assert shown.json()["salesforce"] == view["salesforce"]
    no_secret_in(refused, created, shown, await api.get("/v1/subscriptions"))
    stored = await subscription(db, UUID(view["id"]))
    assert stored.credentials == {"client_secret": CLIENT_SECRET}


WEBHOOK = {"url": f"{LOCAL}/hook", "event_types": ["lead.*"]}


@pytest.mark.parametrize(
    ("body", "named"),
    [
        (
            hubspot_body(hubspot=hubspot_settings(properties={"attribution.sorce": "source"})),
            ["hubspot.properties", "attribution.sorce", "not a Leadflow field"],
        ),
        (
            hubspot_body(hubspot=hubspot_settings(properties={"contact.title": "Job Title"})),
            ["hubspot.properties", "contact.title", "'Job Title'"],
        ),
        (
            hubspot_body(hubspot=hubspot_settings(owners={"ana@example.com": "ana"})),
            ["hubspot.owners", "ana@example.com"],
        ),
        (
            salesforce_body(salesforce=salesforce_settings(fields={"contact.emial": "Email2"})),
            ["salesforce.fields", "contact.emial"],
        ),
        (hubspot_body(url="https://api.hubapi.com"), ["url"]),
        (hubspot_body(event_types=["lead.mql"]), ["event_types", "lead.qualified"]),
        (hubspot_body(format="slack"), ["format"]),
        (hubspot_body(credentials={"app_secret": APP_SECRET}), ["credentials.token"]),
        (hubspot_body(hubspot=None), ["hubspot"]),
        ({**WEBHOOK, "hubspot": hubspot_settings()}, ["hubspot", "kind hubspot"]),
        ({**WEBHOOK, "credentials": {"token": TOKEN}}, ["credentials"]),
        (salesforce_body(hubspot=hubspot_settings()), ["hubspot", "kind hubspot"]),
        (hubspot_body(credentials={"token": TOKEN, "password": "x"}), ["credentials.password"]),
    ],
)
async def test_bad_crm_subscriptions_are_refused_naming_the_field(
    api: httpx.AsyncClient, body: dict[str, Any], named: list[str]
) -> None:
    response = await api.post("/v1/subscriptions", json=body)

    assert_problem(response, 422, *named)
    no_secret_in(response)
    assert (await api.get("/v1/subscriptions")).json() == []


@pytest.mark.parametrize(
    "body",
    [
        hubspot_body(),  # 127.0.0.1, not allowed here
        hubspot_body(hubspot=hubspot_settings(base_url="https://10.0.0.1")),
        salesforce_body(salesforce=salesforce_settings(login_url="https://192.168.1.10")),
    ],
)
async def test_a_crm_target_that_is_not_public_is_refused(
    db: Database, body: dict[str, Any]
) -> None:
    settings = webhook_settings(db, allowed_networks=[])
    async with app_client(
        Runtime(settings=settings, engine=db.engine, sessions=db.sessions)
    ) as api:
        response = await api.post("/v1/subscriptions", json=body)

        problem = assert_problem(response, 422)
        assert problem["field"] == "url" and problem["title"] == "Forbidden webhook target"
        no_secret_in(response)
        assert (await api.get("/v1/subscriptions")).json() == []


async def test_the_crm_field_catalogue_needs_the_secret_key(api: httpx.AsyncClient) -> None:
    listed = await api.get("/v1/subscriptions/crm-fields")

    assert listed.status_code == 200, listed.text
    catalogue = listed.json()
    for name in (
        "contact.email",
        "qualification.score",
        "attribution.utm.campaign",
        "attribution.utm.<key>",
        "custom.<key>",
        "team",
    ):
        assert isinstance(catalogue.get(name), str) and catalogue[name], name
    assert "attribution.sorce" not in catalogue
    anonymous = await api.get("/v1/subscriptions/crm-fields", headers={"Authorization": ""})
    assert_problem(anonymous, 401)
    wrong = await api.get("/v1/subscriptions/crm-fields", headers={"Authorization": "Bearer no"})
    assert wrong.status_code == 403


async def test_patch_replaces_settings_merges_credentials_and_resets_consent(
    api: httpx.AsyncClient, db: Database
) -> None:
    sid = (await api.post("/v1/subscriptions", json=hubspot_body())).json()["id"]
    path = f"/v1/subscriptions/{sid}"

    replaced = await api.patch(
        path,
        json={"hubspot": {"base_url": LOCAL, "properties": {"company.name": "company_name"}}},
    )

    assert replaced.status_code == 200, replaced.text
    properties = replaced.json()["hubspot"]["properties"]
    assert properties["company.name"] == "company_name"
    assert "attribution.utm.campaign" not in properties  # replaced, not merged with the old
    assert properties["contact.email"] == "email"  # the defaults stay
    assert replaced.json()["hubspot"]["owners"] == {}
    assert (await api.get(path)).json()["hubspot"] == replaced.json()["hubspot"]

    merged = await api.patch(path, json={"credentials": {"token": NEW_TOKEN}})
    assert merged.status_code == 200 and merged.json()["credentials"] == ["app_secret", "token"]
    assert (await subscription(db, UUID(sid))).credentials == {
        "token": NEW_TOKEN,
        "app_secret": APP_SECRET,
    }

    flagged = await api.patch(path, json={"consent_flags": ["marketing", "communication:42"]})
    assert flagged.json()["consent_flags"] == ["marketing", "communication:42"]
    kept = await api.patch(path, json={"description": "still flagged"})
    assert kept.json()["consent_flags"] == ["marketing", "communication:42"]
    never = await api.patch(path, json={"consent_flags": []})
    assert never.json()["consent_flags"] == []
    reset = await api.patch(path, json={"consent_flags": None})
    assert reset.status_code == 200 and reset.json()["consent_flags"] is None
    assert (await api.get(path)).json()["consent_flags"] is None
    no_secret_in(replaced, merged, flagged, kept, never, reset, await api.get(path))


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"url": "https://api.hubapi.com"}, "url"),
        ({"hubspot": hubspot_settings(owners={}), "url": "https://x.example.com"}, "url"),
        ({"salesforce": salesforce_settings()}, "salesforce"),
        ({"event_types": ["lead.mql"]}, "event_types"),
        ({"format": "slack"}, "format"),
        ({"hubspot": hubspot_settings(properties={"attribution.sorce": "x"})}, "hubspot"),
        ({"credentials": {"token": NEW_TOKEN}, "format": "slack"}, "format"),
    ],
)
async def test_a_patch_that_does_not_fit_a_hubspot_subscription_changes_nothing(
    api: httpx.AsyncClient, db: Database, patch: dict[str, Any], field: str
) -> None:
    before = (await api.post("/v1/subscriptions", json=hubspot_body())).json()
    path = f"/v1/subscriptions/{before['id']}"

    refused = await api.patch(path, json=patch)

    problem = assert_problem(refused, 422)
    assert problem["field"].startswith(field), problem
    no_secret_in(refused)
    assert (await api.get(path)).json() == {k: v for k, v in before.items() if k != "secret"}
    stored = await subscription(db, UUID(before["id"]))
    assert stored.credentials == {"token": TOKEN, "app_secret": APP_SECRET}


async def test_a_webhook_takes_consent_flags_but_no_crm_settings_or_credentials(
    api: httpx.AsyncClient,
) -> None:
    created = await api.post(
        "/v1/subscriptions", json={**WEBHOOK, "consent_flags": ["marketing", "communication:42"]}
    )

    assert created.status_code == 201, created.text
    view = created.json()
    assert view["consent_flags"] == ["marketing", "communication:42"]
    assert view["kind"] == "webhook" and view["credentials"] == [] and view["inbound_path"] is None
    path = f"/v1/subscriptions/{view['id']}"
    assert (await api.get(path)).json()["consent_flags"] == view["consent_flags"]
    for patch, field in (
        ({"credentials": {"token": TOKEN}}, "credentials"),
        ({"hubspot": hubspot_settings()}, "hubspot"),
    ):
        refused = await api.patch(path, json=patch)
        assert assert_problem(refused, 422)["field"] == field
        no_secret_in(refused)
    shown = (await api.get(path)).json()
    assert shown["credentials"] == [] and shown["hubspot"] is None
