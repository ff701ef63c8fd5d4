"""End to end through the broker: a form post with UTM and consent becomes an MQL, is routed, and
its handoff (``lead.qualified``) reaches a plain receiver complete (checked field by field), a
HubSpot-shaped and a Salesforce-shaped server with the mapped owner; a lead without consent
reaches them without its personal fields; HubSpot's signed webhook back marks the lead accepted.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import orjson
import pytest
from standardwebhooks import Webhook

from services.handoff.main import start_handoff
from services.processes import handoff_parts
from services.routing.main import add_sample_team, start_routing
from services.webhooks.main import start_webhooks
from shared.broker import EmbeddedBroker
from shared.config import Settings
from shared.runtime import Runtime
from tests.support.common import Database, eventually, make_settings
from tests.support.crm_servers import (
    HubSpotServer,
    SalesforceServer,
    contact_change,
    sign_hubspot_v3,
)
from tests.support.harness import running_stack
from tests.support.receiver import Receiver
from tests.support.sla import activate

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": "Bearer sk_test"}
PUBLIC_URL = "https://leadflow.example"
APP_SECRET = "hubspot-app-secret"
HUBSPOT_OWNERS = {"ana@example.com": "101", "bo@example.com": "102", "chen@example.com": "103"}
SF_OWNERS = {
    "ana@example.com": "0055e000001AnaAAAA",
    "bo@example.com": "0055e000001BobAAAA",
    "chen@example.com": "0055e000001ChnAAAA",
}
POLICY = """
name: e2e
policies:
  - id: mql
    first_response: {within: 4h}
"""
FORM = {
    "email": "Ada@Engines.example",
    "phone": "+44 20 7946 0958",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "title": "Head of Research",
    "company": "Analytical Engines Ltd",
    "website": "https://engines.example",
    "country": "United Kingdom",
    "utm": {"source": "newsletter", "medium": "email", "campaign": "spring"},
    "page_url": "https://www.example.com/pricing",
    "referrer": "https://www.google.com/",
    "consent": {"text": "Sales may contact me.", "flags": {"contact": True}},
    "custom": {"team_size": "11-50"},
}


@asynccontextmanager
async def webhooks_service(settings: Settings) -> AsyncIterator[Runtime]:
    runtime = Runtime.create(settings)
    runtime.start_relay("webhooks-relay")
    start_webhooks(runtime)
    try:
        yield runtime
    finally:
        failed = [t for t in runtime.tasks if t.done() and not t.cancelled() and t.exception()]
        await runtime.close()
        assert not failed, f"background task died: {failed[0].exception()!r}"


def _handoffs(receiver: Receiver, secret: str, lead_id: str) -> list[dict[str, Any]]:
    """The verified ``lead.qualified`` events the receiver got about the lead, each once."""
    events: dict[str, dict[str, Any]] = {}
    for request in receiver.received:
        event = Webhook(secret).verify(request.body, request.headers)
        if event["type"] == "lead.qualified" and event["subject"] == lead_id:
            events.setdefault(event["id"], event)
    return list(events.values())


async def test_a_qualified_lead_reaches_every_crm_complete_and_comes_back_accepted(
    db: Database, broker: EmbeddedBroker
) -> None:
    async with (
        Receiver() as receiver,
        HubSpotServer(owners=HUBSPOT_OWNERS.values()) as hubspot,
        SalesforceServer(users=SF_OWNERS.values()) as salesforce,
    ):
        settings = make_settings(
            db,
            broker,
            http={"public_url": PUBLIC_URL},
            webhooks={
                "allowed_networks": ["127.0.0.0/8"],
                "poll_interval_ms": 50,
                "crm_linger_ms": 50,
            },
        )
        async with running_stack(settings) as stack, webhooks_service(settings) as webhooks:
            worker = stack.workers[0]
            start_routing(worker)
            start_handoff(worker, handoff_parts())
            assert await add_sample_team(stack.intake)
            async with stack.intake.sessions.begin() as session:
                await activate(session, settings, text=POLICY)
            plain = await stack.client.post(
                "/v1/subscriptions",
                json={"url": receiver.url(), "event_types": ["lead.qualified"]},
                headers=AUTH,
            )
            to_hubspot = await stack.client.post(
                "/v1/subscriptions",
                json={
                    "kind": "hubspot",
                    "hubspot": {
                        "base_url": hubspot.base_url,
                        "owners": HUBSPOT_OWNERS,
                        "properties": {"attribution.utm.campaign": "leadflow_campaign"},
                    },
                    "credentials": {"token": hubspot.token, "app_secret": APP_SECRET},
                },
                headers=AUTH,
            )
            to_salesforce = await stack.client.post(
                "/v1/subscriptions",
                json={
                    "kind": "salesforce",
                    "salesforce": {
                        "login_url": salesforce.base_url,
                        "client_id": salesforce.client_id,
                        "owners": SF_OWNERS,
                    },
                    "credentials": {"client_secret": salesforce.client_secret},
                },
                headers=AUTH,
            )
            for answer in (plain, to_hubspot, to_salesforce):
                assert answer.status_code == 201, answer.text
            secret = plain.json()["secret"]
            for runtime, consumer in [
                (worker, "routing"),
                (worker, "handoff"),
                (webhooks, "webhooks"),
            ]:
                await eventually(runtime.consumers[consumer].is_set)

            posted = await stack.client.post("/v1/leads", json=FORM)
            assert posted.status_code == 202, posted.text
            lead_id = posted.json()["lead_id"]
            silent = {**FORM, "email": "grace@navy.example", "consent": {"text": "x"}}
            unconsented = await stack.client.post("/v1/leads", json=silent)
            assert unconsented.status_code == 202, unconsented.text
            quiet_id = unconsented.json()["lead_id"]

            [handoff] = await eventually(lambda: _handoffs(receiver, secret, lead_id), within=60)
            [quiet] = await eventually(lambda: _handoffs(receiver, secret, quiet_id), within=60)
            data = handoff["data"]

            # The plain receiver: the whole lead, field by field.
            assert handoff["type"] == "lead.qualified" and data["handoff"] == "qualified"
            assert data["lead_id"] == lead_id and data["is_test"] is False
            assert data["contact"] == {
                "email": "ada@engines.example",
                "phone": "+442079460958",
                "first_name": "Ada",
                "last_name": "Lovelace",
                "title": "Head of Research",
            }
            company = data["company"]
            assert (company["name"], company["domain"], company["country"]) == (
                "Analytical Engines Ltd", "engines.example", "GB",
            )  # fmt: skip
            assert company["is_expansion"] is False and company["account_id"] is None
            attribution = data["attribution"]
            assert attribution["source"] == "web" and attribution["inquiry_source"] == "web"
            assert attribution["utm"] == {
                "source": "newsletter", "medium": "email", "campaign": "spring",
            }  # fmt: skip
            assert attribution["landing_page"] == "https://www.example.com/pricing"
            assert attribution["referrer"] == "https://www.google.com/"
            assert attribution["inquiries"] == 1 and attribution["ad"] is None
            consent = data["consent"]
            assert consent["text"] == "Sales may contact me."
            assert consent["flags"] == {"contact": True}
            assert consent["given_at"] == attribution["received_at"]
            qualification = data["qualification"]
            assert qualification["stage"] == "mql" and qualification["cause"] == "rules"
            assert qualification["rules"] and qualification["ruleset"] == handoff["ruleset"]
            assert qualification["next_stage"] == "sal" and qualification["missing"]
            assert qualification["score"] is not None and qualification["fit_grade"]
            owner = data["owner"]
            assert owner["email"] in HUBSPOT_OWNERS and owner["team"] == "default"
            assert owner["name"] and data["queue"] is None
            assert data["routing"]["trigger"] == "qualified" and data["routing"]["reason"]
            sla = data["sla"]
            assert (sla["policy"], sla["clock"], sla["target_s"]) == (
                "mql",
                "first_response",
                14400,
            )
            assert datetime.fromisoformat(sla["deadline"]) > datetime.fromisoformat(
                data["routing"]["decided_at"]
            )
            assert data["custom"] == {"team_size": "11-50"}
            assert data["links"] == {
                "lead": f"{PUBLIC_URL}/v1/leads/{lead_id}",
                "explanation": f"{PUBLIC_URL}/v1/leads/{lead_id}/explain",
                "routing": f"{PUBLIC_URL}/v1/leads/{lead_id}/routing",
            }

            # Without consent: no personal field, the rest as for anyone.
            assert quiet["data"]["contact"] == {}
            assert "custom" not in quiet["data"]
            assert quiet["data"]["company"]["name"] == "Analytical Engines Ltd"
            assert quiet["data"]["owner"]["email"] in HUBSPOT_OWNERS

            # HubSpot and Salesforce: the lead, with its owner mapped.
            contact = await eventually(lambda: hubspot.contacts.get("ada@engines.example"))
            assert contact["properties"]["hubspot_owner_id"] == HUBSPOT_OWNERS[owner["email"]]
            assert contact["properties"]["lifecyclestage"] == "marketingqualifiedlead"
            assert contact["properties"]["leadflow_campaign"] == "spring"
            assert "grace@navy.example" not in hubspot.contacts  # no email to upsert by
            record = await eventually(lambda: salesforce.leads.get(lead_id))
            assert record["OwnerId"] == SF_OWNERS[owner["email"]]
            assert record["Email"] == "ada@engines.example" and record["LastName"] == "Lovelace"
            kept = await eventually(lambda: salesforce.leads.get(quiet_id))
            assert "Email" not in kept and kept["LastName"] == "[not provided]"

            # The way back: a rep moves the contact to SQL in HubSpot.
            hubspot_id = to_hubspot.json()["id"]
            path = f"/v1/crm/hubspot/{hubspot_id}/events"

            async def linked() -> bool:
                links = await stack.client.get(
                    f"/v1/subscriptions/{hubspot_id}/messages", headers=AUTH
                )
                return any(m["status"] == "delivered" for m in links.json())

            await eventually(linked)
            now_ms = int(time.time() * 1000)
            change = contact_change(
                int(contact["id"]), "lifecyclestage", "salesqualifiedlead",
                event_id=9001, occurred_at_ms=now_ms,
            )  # fmt: skip
            body = orjson.dumps([change])
            timestamp = str(now_ms)
            signature = sign_hubspot_v3(APP_SECRET, "POST", PUBLIC_URL + path, body, timestamp)
            heard = await stack.client.post(
                path,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    "X-HubSpot-Request-Timestamp": timestamp,
                    "X-HubSpot-Signature-v3": signature,
                },
            )
            assert heard.status_code == 200, heard.text
            assert heard.json()["recorded"] == 1

            async def accepted() -> list[str]:
                lead = await stack.client.get(f"/v1/leads/{lead_id}", headers=AUTH)
                return [h["kind"] for h in lead.json()["history"] if h["kind"] == "lead.sal"]

            await eventually(accepted, within=30)

            # Accepted, the lead meets the sample rules' SQL criteria at once: handed over again.
            async def promoted() -> list[dict[str, Any]]:
                found = _handoffs(receiver, secret, lead_id)
                return [e for e in found if e["data"]["handoff"] == "promoted"]

            [again] = await eventually(promoted, within=30)
            assert again["data"]["qualification"]["stage"] == "sql"
            assert again["data"]["owner"] == owner
            stage = await eventually(
                lambda: (
                    hubspot.contacts["ada@engines.example"]["properties"]["lifecyclestage"]
                    == "salesqualifiedlead"
                ),
                within=30,
            )
            assert stage
