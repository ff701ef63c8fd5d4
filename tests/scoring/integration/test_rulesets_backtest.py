"""Backtest over real databases: a hand-computable case, and 50,000 generated leads."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert

from services.scoring import backtest
from services.scoring.models import ScoringActivity
from services.scoring.ruleset import compile_ruleset
from shared.ids import new_id
from shared.models import Lead
from tests.support.common import Database

NOW = datetime(2026, 6, 1, tzinfo=UTC)
ACTIVE = """
name: active
fit:
  grades: {B: 20, D: 0}
  rules:
    - {id: business-email, when: "!lead.free_mail", points: 20}
engagement:
  rules:
    - {id: form, activity: form_submit, points: 15}
    - {id: demo, activity: demo_request, points: 40}
stages:
  mql: {min_grade: B, min_engagement: 15}
"""
PROPOSED = (
    ACTIVE.replace("min_engagement: 15", "min_engagement: 30")
    + """
disqualify:
  - {id: competitor, reason: competitor, when: "lead.email_domain == 'rival.com'"}
"""
)


def lead_row(email: str, source: str, *, days_ago: float = 5, **stages: datetime) -> dict:
    at = NOW - timedelta(days=days_ago)
    return {
        "id": new_id(),
        "email": email,
        "source": source,
        "stage": "inquiry",
        "created_at": at,
        "updated_at": at,
        "sal_at": None,
        "opportunity_at": None,
        "won_at": None,
        **stages,
    }


def did(lead: dict, kind: str) -> dict[str, Any]:
    when = lead["created_at"] + timedelta(hours=1)
    return {
        "id": new_id(),
        "lead_id": lead["id"],
        "kind": kind,
        "occurred_at": when,
        "event_id": new_id(),
    }


async def store(db: Database, leads: list[dict], activities: list[dict]) -> None:
    async with db.sessions.begin() as session:
        for start in range(0, len(leads), 5000):
            await session.execute(insert(Lead.__table__), leads[start : start + 5000])
        for start in range(0, len(activities), 5000):
            await session.execute(
                insert(ScoringActivity.__table__), activities[start : start + 5000]
            )


async def run(db: Database, **kwargs: Any) -> dict[str, Any]:
    active = ("v1", compile_ruleset(ACTIVE))
    proposed = ("v2", compile_ruleset(PROPOSED))
    async with db.sessions() as session:
        report = await backtest.run(session, active, proposed, now=NOW, **kwargs)
    return report.as_dict()


async def test_a_hand_computable_backtest(db: Database) -> None:
    t = NOW - timedelta(days=4)
    # fit 20 (B), engagement 15: MQL under v1, not under v2 (needs 30); sales accepted it and
    # made an opportunity, so under v1 (no SQL criteria) it is an SQL.
    only_form = lead_row("a@acme.com", "web", sal_at=t, opportunity_at=t)
    # engagement 55: MQL under both
    demo = lead_row("b@acme.com", "web")
    # fit 0 (D): below the bar under both
    free = lead_row("c@gmail.com", "ads")
    # MQL under v1; a competitor under v2; it was won
    rival = lead_row("d@rival.com", "ads", opportunity_at=t, won_at=t)
    # outside the 90-day window: not counted
    old = lead_row("e@acme.com", "web", days_ago=100)
    leads = [only_form, demo, free, rival, old]
    activities = [did(lead, "form_submit") for lead in leads]
    activities += [did(lead, "demo_request") for lead in (demo, free, rival, old)]
    await store(db, leads, activities)

    report = await run(db)

    assert report["leads"] == 4
    assert report["changed"] == 2
    assert report["moves"] == {"mql→disqualified": 1, "sql→inquiry": 1}
    assert report["by_source"] == {
        "ads": {"mql_active": 1, "mql_proposed": 0, "sql_active": 0, "sql_proposed": 0},
        "web": {"mql_active": 2, "mql_proposed": 1, "sql_active": 1, "sql_proposed": 0},
    }
    assert report["totals"] == {
        "mql_active": 3,
        "mql_proposed": 1,
        "sql_active": 1,
        "sql_proposed": 0,
    }
    assert report["changed_leads_converted"] == {
        "gained_mql": {"leads": 0, "opportunities": 0, "bookings": 0},
        "lost_mql": {"leads": 2, "opportunities": 2, "bookings": 1},
    }
    assert (await run(db, days=200))["leads"] == 5


async def test_a_backtest_over_fifty_thousand_leads_finishes(pg: Database) -> None:
    rng = random.Random(4)
    domains = ["acme.com", "gmail.com", "rival.com", "globex.io"]
    leads, activities = [], []
    for index in range(50_000):
        lead = lead_row(
            f"p{index}@{rng.choice(domains)}",
            rng.choice(["web", "ads", "events"]),
            days_ago=rng.uniform(0, 89),
        )
        leads.append(lead)
        activities.append(did(lead, "form_submit"))
        if rng.random() < 0.3:
            activities.append(did(lead, "demo_request"))
    await store(pg, leads, activities)
    seen: list[tuple[int, int]] = []

    report = await run(pg, progress=lambda done, total: seen.append((done, total)))

    assert report["leads"] == 50_000
    assert seen[0] == (0, 50_000) and seen[-1] == (50_000, 50_000)
    by_source = report["by_source"].values()
    assert sum(c["mql_active"] for c in by_source) == report["totals"]["mql_active"]
    # v2 asks more of every lead: it can only lose MQLs, never gain one
    assert report["changed_leads_converted"]["gained_mql"]["leads"] == 0
    assert report["totals"]["mql_proposed"] < report["totals"]["mql_active"]
    assert report["changed"] == sum(report["moves"].values()) > 0
