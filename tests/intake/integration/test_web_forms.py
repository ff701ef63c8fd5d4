"""Web forms on both databases: HTML form posts, HubSpot's shape, keys, origins, CORS, limits,
honeypot quarantine, phone dedupe, unstorable text."""

from __future__ import annotations

import asyncio
import json
from uuid import UUID

import pytest

from services.intake.keys.store import revoke_key
from services.intake.models import ApiKey
from shared.models import Inquiry, Lead, LeadHistory, OutboxMessage
from tests.support.common import Database
from tests.support.intake import AUTH, client_for, count, intake, new_key, rows

SITE = "https://www.example.com"
THANKS = "https://www.example.com/thank-you"


async def test_a_plain_html_form_post_is_stored_normalised_and_redirected(db: Database) -> None:
    async with intake(db) as runtime:
        key = await new_key(runtime, origins=[SITE], thank_you_url=THANKS)
        form = {
            "key": key,
            "email": "  Grace.Hopper@Exämple.COM ",
            "name": "Grace  Brewster Hopper",
            "phone": "(415) 555-2671",
            "company": "  Navy   Labs ",
            "country": "United States",
            "website": "https://www.navy-labs.example/about",
            "utm_source": "newsletter",
            "utm_campaign": "spring",
            "page_url": f"{SITE}/demo",
            "referrer": "https://www.google.com/",
            "consent": "on",
            "consent_text": "I agree to be contacted.",
            "interests": ["cobol", "compilers"],  # a group of checkboxes: the field repeats
            "team_size": "11-50",
            "_gotcha": "",
        }
        async with client_for(runtime, headers={"Origin": SITE}) as client:
            response = await client.post("/v1/leads", data=form)  # urlencoded, as a browser sends
            assert response.request.headers["content-type"] == "application/x-www-form-urlencoded"
        assert response.status_code == 303
        assert response.headers["location"] == THANKS
        assert response.headers["access-control-allow-origin"] == SITE
        [lead] = await rows(runtime, Lead)
        assert (lead.email, lead.phone, lead.country) == (
            "grace.hopper@xn--exmple-cua.com",
            "+14155552671",
            "US",
        )
        assert (lead.first_name, lead.last_name, lead.company) == (
            "Grace Brewster",
            "Hopper",
            "Navy Labs",
        )
        assert lead.company_domain == "navy-labs.example"
        [inquiry] = await rows(runtime, Inquiry)
        assert inquiry.quarantine_reason is None
        assert inquiry.raw["email"] == "  Grace.Hopper@Exämple.COM "  # raw kept as posted
        assert inquiry.raw["interests"] == ["cobol", "compilers"]
        assert "key" not in inquiry.raw  # the credential is not stored
        stored = inquiry.submission
        assert stored["utm"] == {"source": "newsletter", "campaign": "spring"}
        assert stored["consent"]["text"] == "I agree to be contacted."
        assert stored["consent"]["flags"] == {"consent": True}
        assert stored["custom"] == {"interests": ["cobol", "compilers"], "team_size": "11-50"}
        assert (stored["page_url"], stored["referrer"]) == (
            f"{SITE}/demo",
            "https://www.google.com/",
        )
        assert await count(runtime, OutboxMessage) == 1


async def test_a_form_asking_for_json_gets_json_and_without_a_thank_you_page_too(
    db: Database,
) -> None:
    async with intake(db) as runtime:
        with_page = await new_key(runtime, thank_you_url=THANKS)
        without = await new_key(runtime)
        async with client_for(runtime) as client:
            asked = await client.post(
                "/v1/leads",
                data={"email": "a@example.com", "key": with_page},
                headers={"Accept": "application/json"},
            )
            plain = await client.post("/v1/leads", data={"email": "b@example.com", "key": without})
            multipart = await client.post(
                "/v1/leads",
                data={"email": "c@example.com", "key": with_page},
                files={"attachment": ("cv.txt", b"ignored")},
            )
        assert asked.status_code == 202 and asked.json()["new_lead"] is True
        assert plain.status_code == 202
        assert multipart.status_code == 303 and multipart.headers["location"] == THANKS
        assert await count(runtime, Inquiry) == 3
    async with intake(db, intake={"thank_you_url": "https://example.org/thanks"}) as runtime:
        key = await new_key(runtime)
        async with client_for(runtime) as client:
            response = await client.post("/v1/leads", data={"email": "d@example.com", "key": key})
        assert response.status_code == 303
        assert response.headers["location"] == "https://example.org/thanks"


async def test_hubspot_shaped_bodies_are_accepted_and_named_in_problems(db: Database) -> None:
    body = {
        "fields": [
            {"objectTypeId": "0-1", "name": "email", "value": "Linus@Example.com"},
            {"objectTypeId": "0-1", "name": "firstname", "value": "Linus"},
            {"objectTypeId": "0-1", "name": "mobilephone", "value": "+44 20 7946 0958"},
            {"objectTypeId": "0-1", "name": "budget", "value": "50k"},
        ],
        "submittedAt": 1767225600000,
        "context": {"hutk": "abc", "pageUri": f"{SITE}/pricing", "pageName": "Pricing"},
        "legalConsentOptions": {
            "consent": {
                "consentToProcess": True,
                "text": "I agree to allow Example to store my data.",
                "communications": [{"value": True, "subscriptionTypeId": 999, "text": "News"}],
            }
        },
    }
    async with intake(db) as runtime:
        key = await new_key(runtime)
        async with client_for(runtime, headers={"X-API-Key": key}) as client:
            response = await client.post("/v1/leads", json=body)
            assert response.status_code == 202, response.text
            bad = json.loads(json.dumps(body))
            bad["fields"][0]["value"] = "not an email"
            refused = await client.post("/v1/leads", json=bad)
        [lead] = await rows(runtime, Lead)
        assert (lead.email, lead.first_name, lead.phone) == (
            "linus@example.com",
            "Linus",
            "+442079460958",
        )
        [inquiry] = await rows(runtime, Inquiry)
        consent = inquiry.submission["consent"]
        assert consent["flags"] == {"consentToProcess": True}
        assert consent["communications"] == [
            {"value": True, "subscription_type_id": 999, "text": "News"}
        ]
        assert inquiry.submission["custom"]["budget"] == "50k"
        assert inquiry.submission["page_url"] == f"{SITE}/pricing"
        assert inquiry.raw == body
        assert refused.status_code == 422
        assert refused.json()["field"] == "fields.0.value"


async def test_keys_are_required_checked_and_bound_to_origins(db: Database) -> None:
    async with intake(db, intake={"key_cache_s": 0}) as runtime:
        public = await new_key(runtime, origins=[SITE])
        secret = await new_key(runtime, kind="secret")
        lead = {"email": "k@example.com"}
        async with client_for(runtime) as client:
            missing = await client.post("/v1/leads", json=lead)
            unknown = await client.post("/v1/leads", json=lead, headers={"X-API-Key": "pk_nope"})
            secret_in_the_open = await client.post(
                "/v1/leads", json=lead, headers={"X-API-Key": secret}
            )
            elsewhere = await client.post(
                "/v1/leads",
                json=lead,
                headers={"X-API-Key": public, "Origin": "https://evil.example"},
            )
            no_origin = await client.post("/v1/leads", json=lead, headers={"X-API-Key": public})
            by_query = await client.post(
                f"/v1/leads?key={public}", json=lead, headers={"Referer": f"{SITE}/form"}
            )
            by_server = await client.post(
                "/v1/leads", json=lead, headers={"Authorization": f"Bearer {secret}"}
            )
            lead_id = by_query.json()["lead_id"]
            public_cannot_read = await client.get(
                f"/v1/leads/{lead_id}", headers={"X-API-Key": public}
            )
            db_secret_reads = await client.get(
                f"/v1/leads/{lead_id}", headers={"Authorization": f"Bearer {secret}"}
            )
            settings_secret_reads = await client.get(f"/v1/leads/{lead_id}", headers=AUTH)
            [row] = await rows(runtime, ApiKey, ApiKey.kind == "public")
            async with runtime.sessions.begin() as session:
                assert await revoke_key(session, row.id, now=row.created_at)
            revoked = await client.post(
                "/v1/leads", json=lead, headers={"X-API-Key": public, "Origin": SITE}
            )
        assert (missing.status_code, missing.json()["field"]) == (401, "X-API-Key")
        assert (unknown.status_code, unknown.json()["field"]) == (403, "X-API-Key")
        assert secret_in_the_open.status_code == 403
        assert (elsewhere.status_code, elsewhere.json()["field"]) == (403, "Origin")
        assert no_origin.status_code == 403
        assert by_query.status_code == 202
        assert by_server.status_code == 202
        assert public_cannot_read.status_code == 401
        assert db_secret_reads.status_code == 200 and settings_secret_reads.status_code == 200
        assert revoked.status_code == 403
        assert await count(runtime, Inquiry) == 2
        stored = await rows(runtime, ApiKey)
        assert all(secret not in (r.key_hash, r.prefix) for r in stored)  # only hashes kept


async def test_cors_preflight_and_headers_follow_the_keys_origins(db: Database) -> None:
    async with intake(db, intake={"cors_origins": ["https://app.example.org"]}) as runtime:
        key = await new_key(runtime, origins=[SITE])
        async with client_for(runtime) as client:
            preflight = await client.options(
                "/v1/leads",
                headers={"Origin": SITE, "Access-Control-Request-Method": "POST"},
            )
            configured = await client.options(
                "/v1/leads", headers={"Origin": "https://app.example.org"}
            )
            stranger = await client.options("/v1/leads", headers={"Origin": "https://evil.example"})
            refused = await client.post(
                "/v1/leads", json={"email": "x"}, headers={"Origin": SITE, "X-API-Key": key}
            )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == SITE
        assert "X-API-Key" in preflight.headers["access-control-allow-headers"]
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert configured.status_code == 204
        assert stranger.status_code == 403
        assert "access-control-allow-origin" not in stranger.headers
        # a problem is readable by the page too
        assert refused.status_code == 422
        assert refused.headers["access-control-allow-origin"] == SITE


async def test_rate_limits_per_address_and_per_key_answer_429_with_retry_after(
    db: Database,
) -> None:
    from services.api import create_app

    limits = {"rate_limit_per_ip": "3/minute", "rate_limit_per_key": "5/minute"}
    async with intake(db, intake=limits) as runtime:
        key = await new_key(runtime)
        app = create_app(runtime)
        headers = {"X-API-Key": key}

        async def post(address: str, n: int) -> int:
            async with client_for(runtime, app=app, address=address, headers=headers) as client:
                response = await client.post("/v1/leads", json={"email": f"r{n}@example.com"})
            if response.status_code == 429:
                assert response.headers["content-type"] == "application/problem+json"
                assert int(response.headers["retry-after"]) >= 1
            return response.status_code

        same_address = [await post("10.0.0.1", n) for n in range(4)]
        assert same_address == [202, 202, 202, 429]
        other_addresses = [await post(f"10.0.1.{n}", n) for n in range(4)]
        assert other_addresses == [202, 202, 429, 429]  # the key's 5 are spent
        async with client_for(runtime, app=app, address="10.0.0.1", headers=AUTH) as server:
            backend = await server.post("/v1/leads", json={"email": "s@example.com"})
        assert backend.status_code == 202  # secret-key posts are not limited
        assert await count(runtime, Inquiry) == 6


async def test_a_honeypot_hit_is_quarantined_not_dropped_and_not_merged(db: Database) -> None:
    async with intake(db) as runtime:
        key = await new_key(runtime, thank_you_url=THANKS)
        async with client_for(runtime, headers={"X-API-Key": key}) as client:
            real = await client.post("/v1/leads", json={"email": "ada@example.com"})
            bot_form = await client.post(
                "/v1/leads", data={"email": "ada@example.com", "_gotcha": "http://spam.example"}
            )
            bot_json = await client.post(
                "/v1/leads", json={"email": "ada@example.com", "_gotcha": "x"}
            )
            shown = await client.get(f"/v1/leads/{bot_json.json()['lead_id']}", headers=AUTH)
        assert bot_form.status_code == 303  # the bot cannot tell
        assert bot_json.status_code == 202
        real_lead = UUID(real.json()["lead_id"])
        assert UUID(bot_json.json()["lead_id"]) != real_lead
        held = await rows(runtime, Inquiry, Inquiry.quarantine_reason == "honeypot")
        assert len(held) == 2
        assert all(i.submission["email"] == "ada@example.com" for i in held)
        assert await count(runtime, Lead, Lead.quarantined.is_(True)) == 2
        assert await count(runtime, Inquiry, Inquiry.lead_id == real_lead) == 1
        assert await count(runtime, OutboxMessage) == 1  # only the real one is routed
        assert await count(runtime, LeadHistory, LeadHistory.kind == "lead.quarantined") == 2
        assert shown.json()["quarantined"] is True
        assert shown.json()["inquiries"][0]["quarantine_reason"] == "honeypot"


async def test_phone_only_inquiries_dedupe_on_the_normalised_number(db: Database) -> None:
    async with intake(db) as runtime:
        key = await new_key(runtime)
        async with client_for(runtime, headers={"X-API-Key": key}) as client:
            first = await client.post("/v1/leads", json={"phone": "(415) 555-2671"})
            again = await client.post("/v1/leads", json={"phone": "+1 415-555-2671"})
            together = await asyncio.gather(
                *(client.post("/v1/leads", json={"phone": "202 555 0143"}) for _ in range(10))
            )
            known = await client.post(
                "/v1/leads", json={"email": "eve@example.com", "phone": "+44 20 7946 0000"}
            )
            by_phone = await client.post("/v1/leads", json={"phone": "+442079460000"})
            bad = await client.post("/v1/leads", json={"phone": "call me"})
        assert again.json()["lead_id"] == first.json()["lead_id"]
        assert again.json()["new_lead"] is False
        assert len({r.json()["lead_id"] for r in together}) == 1
        assert sum(r.json()["new_lead"] for r in together) == 1
        assert by_phone.json()["lead_id"] == known.json()["lead_id"]
        assert (bad.status_code, bad.json()["field"]) == (422, "phone")
        assert await count(runtime, Lead) == 3
        assert await count(runtime, Inquiry) == 14


@pytest.mark.parametrize(
    ("kind", "body", "field"),
    [
        ("json", {"email": "a@example.com", "custom": {"note": "x\u0000y"}}, "custom.note"),
        ("json", {"email": "a@example.com", "first_name": "\u0000"}, "first_name"),
        ("form", {"email": "a@example.com", "comment": "nul\u0000"}, "comment"),
        ("hubspot", {"fields": [{"name": "email", "value": "a\u0000@x.com"}]}, "fields.0.value"),
    ],
)
async def test_nul_characters_are_refused_naming_the_field(
    db: Database, kind: str, body: dict, field: str
) -> None:
    async with intake(db) as runtime:
        key = await new_key(runtime)
        async with client_for(runtime, headers={"X-API-Key": key}) as client:
            if kind == "form":
                response = await client.post("/v1/leads", data=body)
            else:
                response = await client.post("/v1/leads", json=body)
        assert response.status_code == 422
        assert response.json()["field"] == field
        assert await count(runtime, Inquiry) == 0


async def test_an_unknown_media_type_is_415_naming_content_type(db: Database) -> None:
    async with intake(db) as runtime:
        key = await new_key(runtime)
        async with client_for(runtime, headers={"X-API-Key": key}) as client:
            response = await client.post(
                "/v1/leads", content=b"<lead/>", headers={"Content-Type": "application/xml"}
            )
        assert response.status_code == 415
        assert response.json()["field"] == "Content-Type"


@pytest.mark.parametrize(
    "content_type",
    ["multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; boundary=b"],
)
async def test_a_multipart_body_that_cannot_be_parsed_is_400_and_stores_nothing(
    db: Database, content_type: str
) -> None:
    async with intake(db) as runtime:
        key = await new_key(runtime)
        async with client_for(runtime, headers={"X-API-Key": key}) as client:
            response = await client.post(
                "/v1/leads",
                content=b"email=ada@example.com",
                headers={"Content-Type": content_type},
            )
        assert response.status_code == 400
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["field"] == "body"
        assert await count(runtime, Inquiry) == 0
