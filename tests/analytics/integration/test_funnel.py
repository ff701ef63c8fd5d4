"""The funnel over a real database (SQLite and PostgreSQL): a hand-computable set of seven leads,
their events applied by the analytics consumer's handler in a scrambled order and in several
batches, the inquiries' origins read by intake's provider from real rows; then every number of
the report checked against values worked out here, by group and by filter; a redelivery and a
rebuild change nothing; a rebuild after a definition changed applies it.

The leads (March and April 2026, UTC; times in minutes after each lead's inquiry):

====  ==========  ===========  =====================================================
lead  source      campaign     what happened
====  ==========  ===========  =====================================================
A     web         spring       MQL +5 (v1), ana; SQL +1445; opportunity +11525 (1,000);
                               booked +25925 (900) then won +30000 (950)
B     web         spring       MQL +60, bo; SQL +2940; lost
C     web         –            nothing more
D     google-ads  987 (ad)     MQL +30, queued for emea
E     web         –            SQL +1440 without an MQL; opportunity +4320 (500)
F     google-ads  –            a test lead: MQL; never counted
G     meta        –            MQL +120, ana, then reassigned to bo
====  ==========  ===========  =====================================================
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import delete, select, text

from services.analytics import store
from services.analytics.handlers import AnalyticsHandler
from services.analytics.models import AnalyticsLead
from services.analytics.reports import funnel
from services.analytics.settings import AnalyticsSettings, analytics_config
from services.intake.analytics import inquiry_origins
from services.intake.models import PlatformLead
from shared.events import (
    CloudEvent,
    LeadMql,
    LeadOutcome,
    LeadOutcomeData,
    LeadQueued,
    LeadQueuedData,
    LeadReassigned,
    LeadReassignedData,
    LeadReceived,
    LeadReceivedData,
    LeadRouted,
    LeadRoutedData,
    LeadSql,
    StageChangedData,
)
from shared.models import Inquiry, Lead
from tests.support.common import Database, eventually, make_settings

ANA, BO = UUID("0193a1b2-0000-7000-8000-0000000000a1"), UUID("0193a1b2-0000-7000-8000-0000000000b0")
MINUTE = timedelta(minutes=1)
SOURCE = "/tests"


class Leads:
    """The seven leads' rows and the events that tell their story."""

    def __init__(self) -> None:
        self.ids: dict[str, UUID] = {}
        self.inquiries: dict[str, UUID] = {}
        self.arrived: dict[str, datetime] = {}
        self.received: dict[str, LeadReceived] = {}
        self.rows: list[Any] = []

    def lead(
        self, name: str, source: str, at: datetime, submission: dict[str, Any], **lead: Any
    ) -> LeadReceived:
        lead_id, inquiry_id = uuid4(), uuid4()
        self.ids[name], self.inquiries[name], self.arrived[name] = lead_id, inquiry_id, at
        self.rows.append(Lead(id=lead_id, source=source, created_at=at, updated_at=at, **lead))
        self.rows.append(
            Inquiry(
                id=inquiry_id,
                lead_id=lead_id,
                source=source,
                received_at=at,
                submission=submission,
            )  # fmt: skip
        )
        data = LeadReceivedData(
            lead_id=lead_id,
            inquiry_id=inquiry_id,
            source=source,
            new_lead=True,
            is_test=bool(lead.get("is_test")),
        )
        event = self.received[name] = LeadReceived.about_lead(lead_id, data, source=SOURCE, time=at)
        return event

    def at(self, name: str, minutes: float) -> datetime:
        return self.arrived[name] + minutes * MINUTE

    def stage(self, kind: type[LeadMql | LeadSql], name: str, minutes: float) -> CloudEvent:
        to = "mql" if kind is LeadMql else "sql"
        data = StageChangedData(
            lead_id=self.ids[name], from_stage="inquiry", to_stage=to, cause="rules"
        )
        return kind.about_lead(
            self.ids[name], data, source=SOURCE, time=self.at(name, minutes), ruleset="v1"
        )

    def outcome(
        self, name: str, outcome: str, minutes: float, amount: float | None = None
    ) -> LeadOutcome:
        data = LeadOutcomeData(
            lead_id=self.ids[name],
            outcome=outcome,  # type: ignore[arg-type]
            occurred_at=self.at(name, minutes),
            amount=amount,
            currency="EUR" if amount else None,
        )
        # reported to Leadflow a day later: the time that counts is when it happened
        return LeadOutcome.about_lead(
            self.ids[name], data, source=SOURCE, time=self.at(name, minutes + 1440)
        )

    def routed(self, name: str, owner: UUID, minutes: float) -> LeadRouted:
        data = LeadRoutedData(
            lead_id=self.ids[name], trigger="qualified", rule="default", team="emea",
            is_expansion=False, reason="round robin", owner_id=owner,
            owner_email=f"{owner.hex[-2:]}@example.com",
        )  # fmt: skip
        return LeadRouted.about_lead(
            self.ids[name], data, source=SOURCE, time=self.at(name, minutes)
        )


def story() -> tuple[Leads, list[list[CloudEvent]]]:
    """The leads, and their events in the batches they are applied in (scrambled: a lead's
    MQL before its inquiry, a booking before its opportunity, a reassignment before the first
    routing)."""
    leads = Leads()
    march, april = datetime(2026, 3, 2, 10, 0, tzinfo=UTC), datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
    spring = {"utm": {"source": "newsletter", "medium": "email", "campaign": "spring"}}
    a = leads.lead("A", "web", march, spring | {"employees": 250})
    b = leads.lead("B", "web", march + timedelta(days=3), spring | {"company_size": "11-50"})
    c = leads.lead("C", "web", march + timedelta(days=6), {})
    d = leads.lead("D", "google-ads", april, {})
    e = leads.lead("E", "web", april + timedelta(days=1), {"custom": {"employees": 5000}})
    f = leads.lead("F", "google-ads", april + timedelta(days=2), {}, is_test=True)
    g = leads.lead("G", "meta", april + timedelta(days=9), {})
    d_queued = LeadQueued.about_lead(
        leads.ids["D"],
        LeadQueuedData(
            lead_id=leads.ids["D"],
            trigger="qualified",
            rule="default_queue",
            team="emea",
            is_expansion=False,
            reason="nobody free",
        ),  # fmt: skip
        source=SOURCE,
        time=leads.at("D", 31),
    )
    g_moved = LeadReassigned.about_lead(
        leads.ids["G"],
        LeadReassignedData(
            lead_id=leads.ids["G"],
            trigger="rejected",
            rule="default",
            team="emea",
            is_expansion=False,
            reason="round robin",
            previous_owner_id=ANA,
            owner_id=BO,
            owner_email="bo@example.com",
            why="wrong_territory",
        ),  # fmt: skip
        source=SOURCE,
        time=leads.at("G", 300),
    )
    batches: list[list[CloudEvent]] = [
        [leads.stage(LeadMql, "B", 60), leads.outcome("A", "booked", 25925, 900.0)],
        [a, c, leads.stage(LeadMql, "A", 5), leads.routed("A", ANA, 6), g_moved],
        [b, leads.routed("B", BO, 61), leads.stage(LeadSql, "B", 2940), d, d_queued],
        [
            leads.stage(LeadSql, "A", 1445),
            leads.outcome("A", "opportunity", 11525, 1000.0),
            leads.outcome("A", "won", 30000, 950.0),
            leads.outcome("B", "lost", 5000),
            leads.stage(LeadMql, "D", 30),
        ],
        [e, leads.stage(LeadSql, "E", 1440), leads.outcome("E", "opportunity", 4320, 500.0)],
        [f, leads.stage(LeadMql, "F", 10), g, leads.stage(LeadMql, "G", 120)],
        [leads.routed("G", ANA, 121)],
    ]
    return leads, batches


async def seed(db: Database, leads: Leads) -> None:
    async with db.sessions.begin() as session:
        session.add_all([row for row in leads.rows if isinstance(row, Lead)])
        await session.flush()
        session.add_all([row for row in leads.rows if isinstance(row, Inquiry)])
        await session.flush()
        session.add(
            PlatformLead(
                platform="google-ads",
                platform_lead_id="gl-1",
                status="stored",
                lead_id=leads.ids["D"],
                inquiry_id=leads.inquiries["D"],
                received_at=leads.arrived["D"],
                detail={"campaign_id": 987, "form_id": 3},
            )  # fmt: skip
        )


async def apply(
    db: Database, handler: AnalyticsHandler, batches: Sequence[Sequence[CloudEvent]]
) -> None:
    for batch in batches:
        async with db.sessions.begin() as session:
            await handler.handle_batch(batch, session=session, now=datetime.now(UTC))


def handler_for(db: Database, **analytics: Any) -> AnalyticsHandler:
    settings = analytics_config(make_settings(db, analytics=analytics))
    return AnalyticsHandler(settings, inquiry_origins)


async def lines(db: Database) -> dict[UUID, AnalyticsLead]:
    async with db.sessions() as session:
        return {row.lead_id: row for row in await session.scalars(select(AnalyticsLead))}


def snapshot(found: dict[UUID, AnalyticsLead]) -> dict[UUID, dict[str, Any]]:
    columns = AnalyticsLead.__table__.columns.keys()
    return {i: {c: getattr(row, c) for c in columns} for i, row in found.items()}


async def report(db: Database, **query: Any) -> Any:
    query.setdefault("start", date(2026, 3, 1))
    query.setdefault("end", date(2026, 4, 30))
    async with db.sessions() as session:
        return await funnel(session, AnalyticsSettings(), **query)


def counts(group: Any) -> tuple[list[int], list[int]]:
    return [s.reached for s in group.stages], [s.in_order for s in group.stages]


async def test_every_number_of_the_funnel(db: Database) -> None:
    leads, batches = story()
    await seed(db, leads)
    await apply(db, handler_for(db), batches)

    found = await report(db)
    total = found.total
    assert counts(total) == ([6, 4, 3, 2, 1], [6, 4, 2, 1, 1])  # F (a test lead) left out
    rates = [(s.reached_rate, s.in_order_rate) for s in total.stages[1:]]
    assert [(r.converted, r.base) for r, _ in rates] == [(4, 6), (3, 4), (2, 3), (1, 2)]
    assert [(o.converted, o.base) for _, o in rates] == [(4, 6), (2, 4), (1, 2), (1, 1)]
    mql = total.stages[1].in_order_rate
    assert mql.rate == pytest.approx(4 / 6) and mql.small
    assert (mql.low, mql.high) == (pytest.approx(0.3000, abs=5e-5), pytest.approx(0.9032, abs=5e-5))
    lags = {(g.from_stage, g.to_stage): (g.leads, g.p50_s, g.p90_s) for g in total.lags}
    assert lags == {
        ("inquiry", "mql"): (4, 30 * 60.0, 120 * 60.0),  # 5, 30, 60, 120 minutes: 2nd and 4th
        ("mql", "sql"): (2, 1440 * 60.0, 2880 * 60.0),  # A 1440 minutes, B 2880
        ("sql", "opportunity"): (1, 10080 * 60.0, 10080 * 60.0),
        ("opportunity", "booking"): (1, 14400 * 60.0, 14400 * 60.0),
    }
    assert (total.bookings, total.bookings_amount, total.average_booking) == (1, 950.0, 950.0)
    assert total.pipeline_amount == 1500.0

    by_source = {g.group: counts(g) for g in (await report(db, group_by="source")).groups}
    assert by_source == {
        "google-ads": ([1, 1, 0, 0, 0], [1, 1, 0, 0, 0]),
        "meta": ([1, 1, 0, 0, 0], [1, 1, 0, 0, 0]),
        "web": ([4, 2, 3, 2, 1], [4, 2, 2, 1, 1]),
    }
    by_month = {g.group: counts(g)[0] for g in (await report(db, group_by="cohort_month")).groups}
    assert by_month == {"2026-03": [3, 2, 2, 1, 1], "2026-04": [3, 2, 1, 1, 0]}
    by_campaign = [
        (g.group, g.stages[0].reached) for g in (await report(db, group_by="campaign")).groups
    ]
    assert by_campaign == [("987", 1), ("spring", 2), (None, 3)]  # no campaign last
    by_owner = {g.group: g.stages[0].reached for g in (await report(db, group_by="owner")).groups}
    assert by_owner == {str(ANA): 1, str(BO): 2, None: 3}  # G reassigned to bo; D queued
    by_segment = {
        g.group: g.stages[0].reached for g in (await report(db, group_by="segment")).groups
    }
    assert by_segment == {"enterprise": 1, "mid-market": 1, "smb": 1, None: 3}
    platforms = {
        g.group: g.stages[0].reached for g in (await report(db, group_by="ad_platform")).groups
    }
    assert platforms == {"google-ads": 1, None: 5}

    march_web = await report(db, end=date(2026, 3, 31), filters={"source": "web"})
    assert counts(march_web.total) == ([3, 2, 2, 1, 1], [3, 2, 2, 1, 1])
    ana = await report(db, filters={"owner": ANA})
    assert counts(ana.total)[0] == [1, 1, 1, 1, 1]
    nothing = await report(db, start=date(2025, 1, 1), end=date(2025, 12, 31))
    assert (nothing.total, nothing.groups) == (None, [])

    before = snapshot(await lines(db))
    await apply(db, handler_for(db), batches)  # redelivered: the same facts, the same lines
    assert snapshot(await lines(db)) == before


async def test_a_rebuild_gives_the_same_lines_and_applies_a_new_definition(db: Database) -> None:
    leads, batches = story()
    await seed(db, leads)
    await apply(db, handler_for(db), batches)
    before = snapshot(await lines(db))
    async with db.sessions.begin() as session:
        await session.execute(delete(AnalyticsLead))
        stale = uuid4()
        session.add(AnalyticsLead(**before[leads.ids["A"]] | {"lead_id": stale}))

    default = AnalyticsSettings().definitions
    progress = [step async for step in store.rebuild(db.sessions, default, chunk=4)]
    assert progress == [(4, 7), (7, 7)]
    assert snapshot(await lines(db)) == before  # and the line without facts is gone

    coarse = AnalyticsSettings(segments={"small": 1, "large": 500}, time_zone="Pacific/Kiritimati")
    [_ async for _ in store.rebuild(db.sessions, coarse.definitions)]
    after = await lines(db)
    segments = {name: after[leads.ids[name]].segment for name in ("A", "B", "E", "C")}
    assert segments == {"A": "small", "B": "small", "E": "large", "C": None}
    assert after[leads.ids["A"]].cohort_day == "2026-03-03"  # 00:00 at UTC+14
    assert after[leads.ids["D"]].cohort_day == "2026-04-01"  # 23:00 at UTC+14


async def test_a_leads_intake_and_lifecycle_events_applied_at_once(pg: Database) -> None:
    """The consumer's lanes may apply a lead's ``lead.received`` and ``lead.mql`` in two
    transactions at once: the second waits for the first and folds both."""
    leads, _ = story()
    await seed(pg, leads)
    mql = leads.stage(LeadMql, "A", 5)
    handler = handler_for(pg)
    first = pg.sessions()
    try:
        await first.begin()
        await handler.handle_batch([leads.received["A"]], session=first, now=datetime.now(UTC))

        async def second() -> None:
            async with pg.sessions.begin() as session:
                await handler.handle_batch([mql], session=session, now=datetime.now(UTC))

        waiting = asyncio.create_task(second())
        await eventually(lambda: lock_waits(pg))
        await first.commit()
        await waiting
    finally:
        await first.close()
    line = (await lines(pg))[leads.ids["A"]]
    assert (line.cohort_at, line.mql_at) == (leads.arrived["A"], leads.at("A", 5))


async def lock_waits(db: Database) -> bool:
    async with db.engine.connect() as connection:
        query = text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        )
        return bool(await connection.scalar(query))
