"""Builders for routing tests: leads in the database, a directory made through the admin API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.routing import store
from services.routing.schemas import AccountIn, RepIn, TeamIn
from services.routing.versions import ROUTING
from shared.auth import Caller
from shared.config import Settings
from shared.cosign import store as cosigned
from shared.ids import new_id
from shared.models import Inquiry, Lead

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # a Tuesday


async def add_lead(
    session: AsyncSession,
    *,
    email: str | None = None,
    company: str = "Initech",
    stage: str = "mql",
    **custom: Any,
) -> UUID:
    lead_id = new_id()
    await session.execute(
        insert(Lead.__table__).values(
            id=lead_id,
            email=email or f"lead.{uuid4().hex[:10]}@prospect-{uuid4().hex[:6]}.com",
            company=company,
            source="web",
            stage=stage,
            created_at=NOW,
            updated_at=NOW,
        )
    )
    await session.execute(
        insert(Inquiry.__table__).values(
            id=new_id(),
            lead_id=lead_id,
            source="web",
            received_at=NOW,
            submission={"company": company, "custom": custom},
        )
    )
    return lead_id


async def add_leads(session: AsyncSession, count: int) -> list[UUID]:
    ids = [new_id() for _ in range(count)]
    await session.execute(
        insert(Lead.__table__),
        [
            {
                "id": i,
                "email": f"l{n}.{uuid4().hex[:8]}@example.org",
                "company": f"Prospect {n}",
                "source": "web",
                "stage": "mql",
                "created_at": NOW,
                "updated_at": NOW,
            }
            for n, i in enumerate(ids)
        ],
    )
    return ids


async def team(session: AsyncSession, name: str, **values: Any) -> UUID:
    return await store.put_team(session, TeamIn(name=name, **values), NOW)


async def rep(session: AsyncSession, email: str, *teams: str, **values: Any) -> UUID:
    values.setdefault("name", email.split("@")[0].title())
    return await store.put_rep(session, RepIn(email=email, teams=list(teams), **values), NOW)


async def capped_pool(session: AsyncSession, max_open: int) -> None:
    """The team ``default``: Ann, Bob and Cy, each with at most ``max_open`` open leads."""
    await team(session, "default")
    for name in ("ann", "bob", "cy"):
        await rep(session, f"{name}@co.com", "default", max_open=max_open)


async def account(session: AsyncSession, name: str, domain: str | None, owner: str) -> UUID:
    return await store.put_account(
        session, AccountIn(name=name, domain=domain, owner_email=owner), NOW
    )


MARKETING = Caller("maria", frozenset({"approver:marketing"}))
SALES = Caller("sam", frozenset({"approver:sales"}))


async def activate_rules(session: AsyncSession, text: str, settings: Settings) -> int:
    """Propose routing rules, have both sides sign them and make them live, as people would."""
    row = await cosigned.propose(session, ROUTING, text, by="test", now=NOW)
    for caller, side in ((MARKETING, "marketing"), (SALES, "sales")):
        await cosigned.approve(
            session,
            ROUTING,
            row.version,
            caller=caller,
            side=side,
            signed_hash=row.content_hash,
            now=NOW,
        )
    await cosigned.activate(session, settings, ROUTING, row.version, by="test", now=NOW)
    return row.version
