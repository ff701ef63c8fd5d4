"""Idempotency-Key (retries, concurrent posts, concurrent transactions) and erasure, on both
databases."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import select, text

from services.intake.schemas import LeadSubmission
from services.intake.store import Arrival, Idempotency, Replayed, store_inquiries
from shared.models import Inquiry, Lead, LeadHistory, OutboxMessage
from shared.runtime import Runtime
from tests.support.common import Database, eventually
from tests.support.intake import AUTH, client_for, count, intake, new_key, rows

LEAD = {"email": "ada@example.com", "first_name": "Ada", "company": "Analytical Engines"}


async def test_a_retried_post_gets_the_first_answer_and_makes_no_new_inquiry(
    db: Database,
) -> None:
    async with intake(db) as runtime:
        key = await new_key(runtime)
        async with client_for(runtime, headers={"X-API-Key": key}) as client:
            first = await client.post("/v1/leads", json=LEAD, headers={"Idempotency-Key": "k-1"})
            retry = await client.post("/v1/leads", json=LEAD, headers={"Idempotency-Key": "k-1"})
            other = await client.post("/v1/leads", json=LEAD, headers={"Idempotency-Key": "k-2"})
            changed = await client.post(
                "/v1/leads", json=LEAD | {"company": "Other"}, headers={"Idempotency-Key": "k-1"}
            )
            malformed = await client.post(
                "/v1/leads", json=LEAD, headers={"Idempotency-Key": "x" * 201}
            )
        assert first.status_code == retry.status_code == 202
        assert retry.json() == first.json()
        assert retry.headers["location"] == first.headers["location"]
        assert retry.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
        assert other.json()["inquiry_id"] != first.json()["inquiry_id"]
        assert (changed.status_code, changed.json()["field"]) == (422, "Idempotency-Key")
        assert (malformed.status_code, malformed.json()["field"]) == (422, "Idempotency-Key")
        assert await count(runtime, Inquiry) == 2
        assert await count(runtime, OutboxMessage) == 2


async def test_one_key_posted_concurrently_makes_exactly_one_inquiry(db: Database) -> None:
    async with intake(db, intake={"writers": 4, "max_batch": 8}) as runtime:
        key = await new_key(runtime)
        async with client_for(runtime, headers={"X-API-Key": key}) as client:
            answers = await asyncio.gather(
                *(
                    client.post("/v1/leads", json=LEAD, headers={"Idempotency-Key": "same"})
                    for _ in range(20)
                )
            )
        assert {a.status_code for a in answers} == {202}
        assert len({json.dumps(a.json(), sort_keys=True) for a in answers}) == 1
        assert sum("idempotent-replayed" not in a.headers for a in answers) == 1
        assert await count(runtime, Inquiry) == 1
        assert await count(runtime, OutboxMessage) == 1


async def test_two_keys_scoped_by_api_key_do_not_meet(db: Database) -> None:
    async with intake(db) as runtime:
        one, two = await new_key(runtime), await new_key(runtime)
        async with client_for(runtime) as client:
            a = await client.post(
                "/v1/leads", json=LEAD, headers={"X-API-Key": one, "Idempotency-Key": "k"}
            )
            b = await client.post(
                "/v1/leads", json=LEAD, headers={"X-API-Key": two, "Idempotency-Key": "k"}
            )
        assert a.json()["inquiry_id"] != b.json()["inquiry_id"]
        assert await count(runtime, Inquiry) == 2


async def test_a_key_in_two_concurrent_transactions_resolves_to_the_first_answer(
    db: Database,
) -> None:
    async with intake(db) as runtime:
        submission = LeadSubmission(email="grace@example.com")

        def arrival() -> Arrival:
            return Arrival(
                submission,
                datetime.now(UTC),
                idempotency=Idempotency("scope:key", "f" * 64),
            )

        first_session = runtime.sessions()
        await first_session.begin()
        [first] = await store_inquiries(first_session, [arrival()], settings=runtime.settings)

        async def second() -> object:
            async with runtime.sessions.begin() as session:
                [answer] = await store_inquiries(session, [arrival()], settings=runtime.settings)
                return answer

        waiting = asyncio.create_task(second())  # waits on the key (PostgreSQL) or the lock
        if db.kind == "postgresql":
            await eventually(lambda: _waiting_on_a_lock(runtime))
        await first_session.commit()
        await first_session.close()
        answer = await waiting
        assert isinstance(answer, Replayed)
        assert answer.model_dump() == first.model_dump()  # type: ignore[union-attr]
        assert await count(runtime, Inquiry) == 1


async def _waiting_on_a_lock(runtime: Runtime) -> bool:
    async with runtime.sessions() as session:
        query = text(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE wait_event_type = 'Lock' AND datname = current_database()"
        )
        return bool(await session.scalar(query))


async def test_erasure_removes_personal_data_keeps_funnel_facts_and_is_idempotent(
    db: Database,
) -> None:
    async with intake(db) as runtime:
        key = await new_key(runtime)
        async with client_for(runtime, headers={"X-API-Key": key}) as client:
            posted = await client.post(
                "/v1/leads",
                json=LEAD
                | {"phone": "+44 20 7946 0958", "utm": {"source": "ads"}, "custom": {"a": "b"}},
            )
            lead_id = posted.json()["lead_id"]
            await client.post("/v1/leads", json=LEAD | {"last_name": "Lovelace"})
            unauthorised = await client.delete(f"/v1/leads/{lead_id}")
            erased = await client.delete(f"/v1/leads/{lead_id}", headers=AUTH)
            again = await client.delete(f"/v1/leads/{lead_id}", headers=AUTH)
            missing = await client.delete(f"/v1/leads/{UUID(int=1)}", headers=AUTH)
            shown = (await client.get(f"/v1/leads/{lead_id}", headers=AUTH)).json()
            returning = await client.post("/v1/leads", json=LEAD)
        assert unauthorised.status_code == 401
        assert erased.status_code == 200 and erased.json()["status"] == "erased"
        assert again.status_code == 200 and again.json() == erased.json()
        assert (missing.status_code, missing.json()["field"]) == (404, "lead_id")
        for name in ("email", "phone", "first_name", "last_name", "company", "company_domain"):
            assert shown[name] is None, name
        assert (shown["source"], shown["stage"]) == ("web", "inquiry")
        assert shown["erased_at"] == erased.json()["erased_at"].replace("+00:00", "Z")
        assert [h["kind"] for h in shown["history"]].count("lead.erased") == 1
        [stored] = await rows(runtime, Lead, Lead.id == UUID(lead_id))
        assert stored.phone_key is None and stored.created_at is not None
        for inquiry in await rows(runtime, Inquiry, Inquiry.lead_id == UUID(lead_id)):
            assert inquiry.raw is None
            assert set(inquiry.submission) <= {"source", "utm"}
        first_inquiry = (
            await rows(runtime, Inquiry, Inquiry.id == UUID(posted.json()["inquiry_id"]))
        )[0]
        assert first_inquiry.submission == {"source": "web", "utm": {"source": "ads"}}
        async with runtime.sessions() as session:
            events = (
                await session.scalars(
                    select(OutboxMessage.payload).where(OutboxMessage.type == "lead.erased")
                )
            ).all()
        assert len(events) == 1
        event = json.loads(events[0])
        assert event["subject"] == lead_id and "email" not in events[0]
        assert returning.json()["lead_id"] != lead_id  # the person is new to us again
        assert await count(runtime, LeadHistory, LeadHistory.kind == "lead.erased") == 1
