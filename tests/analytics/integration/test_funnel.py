"""The funnel over a real database (SQLite and PostgreSQL): the seven hand-computable leads of
tests/support/analytics.py, their events applied by the analytics consumer's handler in a
scrambled order and in several batches, the inquiries' origins read by intake's provider from
real rows; then every number of the report checked against values worked out here, by group and
by filter; a redelivery and a rebuild change nothing; a rebuild after a definition changed
applies it."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import delete, select, text

from services.analytics import store
from services.analytics.models import AnalyticsLead
from services.analytics.reports import attribution, funnel
from services.analytics.settings import AnalyticsSettings
from shared.events import LeadMql
from tests.support.analytics import ANA, BO, apply, handler_for, seed, story
from tests.support.common import Database, eventually


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

    for by in ("source", "campaign", "owner"):  # grouped, the total is the same, lags and all
        assert (await report(db, group_by=by)).total == total
    only_c = await report(db, start=date(2026, 3, 8), end=date(2026, 3, 8), group_by="source")
    assert only_c.total is not None and counts(only_c.total) == ([1, 0, 0, 0, 0], [1, 0, 0, 0, 0])
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


async def test_bookings_and_pipeline_credited(db: Database) -> None:
    """A's booking (20 March) and opportunity (10 March) are marketing's (an MQL first) and an
    existing customer's; E's opportunity (5 April) is sales' (never an MQL) and net-new."""
    leads, batches = story()
    await seed(db, leads)
    await apply(db, handler_for(db), batches)

    async def credited(start: date, end: date, **query: Any) -> Any:
        async with db.sessions() as session:
            return await attribution(session, AnalyticsSettings(), start=start, end=end, **query)

    def shares(split: Any) -> dict[str, tuple[int, float]]:
        return {name: (share.count, share.amount) for name, share in split}

    found = await credited(date(2026, 3, 1), date(2026, 4, 30))
    assert [g.group for g in found.groups] == ["web"]  # the only source with either
    assert shares(found.total.bookings) == {
        "all": (1, 950.0), "marketing": (1, 950.0), "sales": (0, 0.0),
        "expansion": (1, 950.0), "net_new": (0, 0.0),
    }  # fmt: skip
    assert shares(found.total.pipeline) == {
        "all": (2, 1500.0), "marketing": (1, 1000.0), "sales": (1, 500.0),
        "expansion": (1, 1000.0), "net_new": (1, 500.0),
    }  # fmt: skip
    april = await credited(date(2026, 4, 1), date(2026, 4, 30), group_by="campaign")
    assert april.total.bookings.all.count == 0 and april.total.pipeline.all.amount == 500.0
    assert [g.group for g in april.groups] == [None]  # E has no campaign
    march_20 = await credited(date(2026, 3, 20), date(2026, 3, 20))
    assert march_20.total.bookings.all.count == 1  # the whole day, in the reporting zone
    east = AnalyticsSettings(time_zone="Pacific/Kiritimati")  # UTC+14: 10:05 is 00:05 next day
    async with db.sessions() as session:
        day = {
            d: await attribution(session, east, start=date(2026, 3, d), end=date(2026, 3, d))
            for d in (20, 21)
        }
    assert (day[20].total.bookings.all.count, day[21].total.bookings.all.count) == (0, 1)


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
