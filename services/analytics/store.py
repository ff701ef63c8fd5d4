"""The analytics service's queries: keeping facts, folding them into funnel lines, rebuilding the
lines, and the funnel's counts and stage lags over the lines of a cohort."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    delete,
    func,
    or_,
    select,
    text,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.analytics.feedback import KINDS, Qualified, Said
from services.analytics.funnel import STAGES, Counts, Lag, Share, Split, lag, total_of
from services.analytics.goals import Activity, CompiledGoals, compile_goals
from services.analytics.models import AnalyticsFact, AnalyticsLead
from services.analytics.projection import Definitions, Fact, LeadLine, fold, merge
from services.analytics.versions import GOALS
from shared.cosign import store as cosigned
from shared.db import among, insert_ignoring_conflicts, insert_many
from shared.models import table_of

facts_t, lines_t = table_of(AnalyticsFact), table_of(AnalyticsLead)
LOCK = text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k")
L = AnalyticsLead
STAGE_TIMES = (L.cohort_at, L.mql_at, L.sql_at, L.opportunity_at, L.booked_at)
"""When a line reached each of ``funnel.STAGES`` (the inquiry: its cohort's first inquiry)."""
PAIRS = list(zip(STAGES, STAGES[1:], strict=False))
GROUPS: dict[str, Any] = {
    "source": L.source,
    "campaign": L.campaign,
    "medium": L.medium,
    "ad_platform": L.ad_platform,
    "segment": L.segment,
    "team": L.team,
    "owner": L.owner_id,
    "expansion": L.is_expansion,
    "ruleset": L.ruleset,
    "cohort_month": L.cohort_month,
    "cohort_day": L.cohort_day,
}
"""What a report may be grouped by, and filtered on (each by its name)."""


async def add_facts(session: AsyncSession, facts: Sequence[Fact]) -> None:
    """Keep the facts; one already kept (the same event) is left as it is."""
    if facts:
        await session.execute(insert_ignoring_conflicts(session, facts_t), [_row(f) for f in facts])


def _row(value: Fact | LeadLine) -> dict[str, Any]:
    """A fact or a line as a table row (``dataclasses.asdict`` copies each value deeply: it was
    most of the handler's time)."""
    return {name: getattr(value, name) for name in value.__slots__}


async def facts_of(session: AsyncSession, lead_ids: Collection[UUID]) -> dict[UUID, list[Fact]]:
    query = select(facts_t).where(among(session, facts_t.c.lead_id, lead_ids))
    found: dict[UUID, list[Fact]] = defaultdict(list)
    for row in await session.execute(query):
        found[row.lead_id].append(
            Fact(row.event_id, row.lead_id, row.kind, row.occurred_at, row.detail)
        )
    return found


async def apply(
    session: AsyncSession, facts: Sequence[Fact], definitions: Definitions
) -> list[LeadLine]:
    """The new ``facts`` (kept already) into their leads' lines: merged into the line a lead
    has (``projection.merge``), else (no line yet, or one that cannot tell) folded again from
    all the lead's facts."""
    new: dict[UUID, list[Fact]] = defaultdict(list)
    for fact in facts:
        new[fact.lead_id].append(fact)
    await _lock(session, new)
    query = select(lines_t).where(among(session, lines_t.c.lead_id, new))
    had = {row.lead_id: LeadLine(**row._mapping) for row in await session.execute(query)}
    merged = {
        lead_id: line
        for lead_id, line in ((i, merge(had[i], new[i], definitions)) for i in had)
        if line is not None
    }
    return await _replace(session, new, merged, definitions)


async def refold(
    session: AsyncSession, lead_ids: Collection[UUID], definitions: Definitions
) -> list[LeadLine]:
    """Fold the leads' facts into their lines again, replacing the lines they had."""
    if not lead_ids:
        return []
    await _lock(session, lead_ids)
    return await _replace(session, lead_ids, {}, definitions)


async def _replace(
    session: AsyncSession,
    lead_ids: Collection[UUID],
    merged: dict[UUID, LeadLine],
    definitions: Definitions,
) -> list[LeadLine]:
    """The leads' lines replaced: ``merged`` ones as they are, the others folded from all
    their facts (a lead without an inquiry yet loses its line)."""
    unfolded = [i for i in lead_ids if i not in merged]
    facts = await facts_of(session, unfolded) if unfolded else {}
    folded = (fold(facts.get(i, []), definitions) for i in unfolded)
    kept = [*merged.values(), *(line for line in folded if line)]
    lines = sorted(kept, key=lambda line: line.lead_id)
    await session.execute(delete(lines_t).where(among(session, lines_t.c.lead_id, lead_ids)))
    await insert_many(session, (lines_t, [_row(line) for line in lines]))
    return lines


async def _lock(session: AsyncSession, lead_ids: Collection[UUID]) -> None:
    """One transaction at a time folds a lead. On PostgreSQL the consumer applies the intake and
    the lifecycle topic in lanes side by side, so a lead's ``lead.received`` and ``lead.mql`` may
    be applied at once, each transaction blind to the other's fact: a transaction advisory lock
    per lead (its id's last 64 bits), taken in order, makes the second wait and fold both.
    SQLite has one writer at a time."""
    if session.get_bind().dialect.name != "postgresql":
        return
    keys = sorted({int.from_bytes(i.bytes[8:], "big", signed=True) for i in lead_ids})
    await session.execute(LOCK, {"keys": keys})


async def rebuild(
    sessions: async_sessionmaker[AsyncSession], definitions: Definitions, *, chunk: int = 2000
) -> AsyncIterator[tuple[int, int]]:
    """Fold every lead's line again, ``chunk`` leads per transaction; yields (done, total) after
    each. Lines of leads that no longer have facts go too."""
    async with sessions() as session:
        total = await session.scalar(select(func.count(func.distinct(AnalyticsFact.lead_id))))
    total = total or 0
    done, after = 0, None
    while True:
        async with sessions.begin() as session:
            query = select(AnalyticsFact.lead_id).distinct().order_by(AnalyticsFact.lead_id)
            if after is not None:
                query = query.where(AnalyticsFact.lead_id > after)
            ids = list(await session.scalars(query.limit(chunk)))
            if not ids:
                orphans = select(AnalyticsFact.lead_id).distinct().scalar_subquery()
                await session.execute(delete(lines_t).where(lines_t.c.lead_id.not_in(orphans)))
                return
            await refold(session, ids, definitions)
        done, after = done + len(ids), ids[-1]
        yield min(done, total), total


@dataclass(frozen=True, slots=True)
class Cohort:
    """Which lines a report counts: cohort days from ``start`` to ``end`` (both included), and
    dimensions equal to the values given (``GROUPS``' names). Test leads never count."""

    start: date | None = None
    end: date | None = None
    where: Mapping[str, Any] = field(default_factory=dict)

    def conditions(self) -> list[ColumnElement[bool]]:
        found: list[ColumnElement[bool]] = [L.is_test.is_(False)]
        if self.start is not None:
            found.append(L.cohort_day >= self.start.isoformat())
        if self.end is not None:
            found.append(L.cohort_day <= self.end.isoformat())
        for name, value in self.where.items():
            column = GROUPS[name]
            found.append(column.is_(None) if value is None else column == value)
        return found


def _passed(upto: int) -> ColumnElement[bool]:
    """The line passed stages 0…upto, each no later than the next."""
    times = STAGE_TIMES[: upto + 1]
    return and_(
        *(t.is_not(None) for t in times), *(a <= b for a, b in zip(times, times[1:], strict=False))
    )


def _in_order(upto: int) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((_passed(upto), 1), else_=0)), 0)


def _lag_quantiles(i: int) -> list[ColumnElement[Any]]:
    """PostgreSQL: the p50 and p90 (``percentile_disc``: nearest rank, as funnel.percentile) of
    the seconds from stage i to i+1 over the lines that passed both in order."""
    seconds = func.extract("epoch", STAGE_TIMES[i + 1] - STAGE_TIMES[i])
    return [
        func.percentile_disc(share).within_group(seconds).filter(_passed(i + 1))
        for share in (0.5, 0.9)
    ]


TOTAL = "__total__"
"""Where ``_lags`` answers for all the lines together, beside the groups."""


async def counts_and_total(
    session: AsyncSession, cohort: Cohort, group_by: str
) -> tuple[Counts | None, list[Counts]]:
    """``counts`` by ``group_by``, and the counts of all the lines: summed from the groups
    (they part the lines), with the lags of all of them worked out in the groups' query."""
    groups = await counts(session, cohort, group_by, total=True)
    found = [c for c in groups if c.group != TOTAL]
    whole = next((c for c in groups if c.group == TOTAL), None)
    if not found:
        return None, found
    return total_of(found, whole.lags if whole is not None else {}), found


async def counts(
    session: AsyncSession, cohort: Cohort, group_by: str | None, *, total: bool = False
) -> list[Counts]:
    """Both views' counts, the amounts and the stage lags per group (one group, None, without
    ``group_by``), in group order; with ``total``, also a group ``TOTAL`` holding only the lags
    of all the lines (``counts_and_total``)."""
    key = GROUPS[group_by] if group_by else None
    n = len(STAGES)
    columns = [
        *(func.count(t) for t in STAGE_TIMES),
        *(_in_order(i) for i in range(n)),
        func.coalesce(func.sum(case((L.booked_at.is_not(None), L.booking_amount))), 0.0),
        func.count(case((L.booked_at.is_not(None), L.booking_amount))),
        func.coalesce(func.sum(case((L.opportunity_at.is_not(None), L.opportunity_amount))), 0.0),
    ]
    query = select(*(([key.label("grp")] if key is not None else []) + columns)).where(
        *cohort.conditions()
    )
    if key is not None:
        query = query.group_by(key)
    rows = sorted(
        (await session.execute(query)).all(), key=_group_order if key is not None else None
    )
    lags = await _lags(session, cohort, key, total=total)
    found = []
    if total and TOTAL in lags:
        found.append(Counts(group=TOTAL, reached=[], in_order=[], lags=lags[TOTAL]))
    for row in rows:
        values = list(row)
        group = values.pop(0) if key is not None else None
        if values[0] == 0:
            continue
        found.append(
            Counts(
                group=group,
                reached=[int(v) for v in values[:n]],
                in_order=[int(v) for v in values[n : 2 * n]],
                bookings_amount=float(values[2 * n]),
                priced_bookings=int(values[2 * n + 1]),
                pipeline_amount=float(values[2 * n + 2]),
                lags=lags.get(group, {}),
            )
        )
    return found


def _group_order(row: Any) -> tuple[bool, str]:
    """Groups in order, the one without a value (no campaign, no segment…) last, on both
    databases."""
    return row[0] is None, str(row[0])


async def _lags(
    session: AsyncSession, cohort: Cohort, key: Any, *, total: bool = False
) -> dict[Any, dict[tuple[str, str], Lag]]:
    """Per group, from each stage to the next, the lines that passed both in order and the p50
    and p90 of their time between them (nearest rank). PostgreSQL works them out in SQL
    (``percentile_disc``, over the MQLs' lines only: a query of their own, so the counts' stays
    a parallel hash aggregate); SQLite, without percentiles, here from the lines' times."""
    group = [key.label("grp")] if key is not None else []
    mqls = (*cohort.conditions(), L.mql_at.is_not(None))
    found: dict[Any, dict[tuple[str, str], Lag]] = {}
    if session.get_bind().dialect.name == "postgresql":
        columns: list[ColumnElement[Any]] = [
            func.count(case((_passed(i + 1), 1))) for i in range(len(PAIRS))
        ]
        columns += [q for i in range(len(PAIRS)) for q in _lag_quantiles(i)]
        if key is not None and total:
            # One pass for the groups and for all the lines (grouping(…) = 1 on the latter).
            columns.insert(0, func.grouping(key))
        query = select(*group, *columns).where(*mqls)
        if key is not None:
            sets = func.grouping_sets(tuple_(key), tuple_()) if total else key
            query = query.group_by(sets)
        for row in await session.execute(query):
            values = list(row)
            name = values.pop(0) if key is not None else None
            if key is not None and total and values.pop(0):
                name = TOTAL
            quantiles = values[len(PAIRS) :]
            found[name] = {
                (a, b): Lag(
                    a, b, int(values[i]), _seconds(quantiles[2 * i]), _seconds(quantiles[2 * i + 1])
                )
                for i, (a, b) in enumerate(PAIRS)
            }
        return found
    durations: dict[Any, dict[tuple[str, str], list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for row in await session.execute(select(*group, *STAGE_TIMES).where(*mqls)):
        values = list(row)
        name = values.pop(0) if key is not None else None
        for i, pair in enumerate(PAIRS):
            before, after = values[i], values[i + 1]
            if before is None or after is None or after < before:
                break
            durations[name][pair].append((after - before).total_seconds())
    if total:
        durations[TOTAL] = defaultdict(list)
        for name, pairs in list(durations.items()):
            for pair, seconds in pairs.items():
                if name != TOTAL:
                    durations[TOTAL][pair].extend(seconds)
    for name, pairs in durations.items():
        found[name] = {pair: lag(*pair, pairs.get(pair, ())) for pair in PAIRS}
    return found


def _seconds(value: Any) -> float | None:
    return float(value) if value is not None else None


async def credits(
    session: AsyncSession,
    cohort: Cohort,
    group_by: str,
    *,
    start: datetime,
    end: datetime,
) -> list[tuple[Any, Split, Split]]:
    """Per group (of ``cohort``'s dimensions; its days are not read), the bookings and the
    opportunities dated from ``start`` up to ``end``, credited (funnel.Split)."""
    key = GROUPS[group_by]
    booked = and_(L.booked_at >= start, L.booked_at < end)
    opened = and_(L.opportunity_at >= start, L.opportunity_at < end)
    marketing, expansion = L.sourced_by == "marketing", L.is_expansion.is_(True)
    columns = []
    for within, amount in ((booked, L.booking_amount), (opened, L.opportunity_amount)):
        for share in (within, and_(within, marketing), and_(within, expansion)):
            columns += [
                func.count(case((share, 1))),
                func.coalesce(func.sum(case((share, amount))), 0.0),
            ]
    query = (
        select(key.label("grp"), *columns)
        .where(*cohort.conditions(), or_(booked, opened))
        .group_by(key)
    )
    found = []
    for row in sorted((await session.execute(query)).all(), key=_group_order):
        shares = [Share(int(row[i]), float(row[i + 1])) for i in range(1, len(row), 2)]
        found.append((row[0], Split(*shares[:3]), Split(*shares[3:])))
    return found


async def activity(session: AsyncSession, *, start: datetime, end: datetime) -> list[Activity]:
    """The lines that became an MQL, opened an opportunity or booked from ``start`` up to
    ``end`` (test leads left out), as the goals' actuals count them."""

    def within(column: Any) -> ColumnElement[bool]:
        return and_(column >= start, column < end)

    query = select(
        L.team, L.owner_email, L.mql_at, L.sql_at, L.opportunity_at, L.booked_at,
        L.booking_amount, L.sourced_by, L.is_expansion,
    ).where(
        L.is_test.is_(False), or_(within(L.mql_at), within(L.opportunity_at), within(L.booked_at))
    )  # fmt: skip
    return [Activity(*row) for row in await session.execute(query)]


async def live_goals(session: AsyncSession) -> tuple[int, CompiledGoals] | None:
    """The goals version live now, compiled; None before the first goes live."""
    row = await cosigned.active(session, GOALS)
    return (row.version, compile_goals(row.content)) if row is not None else None


async def open_pipeline(session: AsyncSession) -> tuple[int, int]:
    """Open now: opportunities neither booked nor lost, and SQLs without an opportunity, that
    no recycling or disqualification closed since (test leads left out)."""

    def still_open(since: Any) -> ColumnElement[bool]:
        return and_(
            L.booked_at.is_(None),
            L.lost_at.is_(None),
            or_(L.dropped_at.is_(None), L.dropped_at < since),
        )

    opportunities = func.count(
        case((and_(L.opportunity_at.is_not(None), still_open(L.opportunity_at)), 1))
    )
    sqls = func.count(
        case((and_(L.sql_at.is_not(None), L.opportunity_at.is_(None), still_open(L.sql_at)), 1))
    )
    row = (await session.execute(select(opportunities, sqls).where(L.is_test.is_(False)))).one()
    return int(row[0]), int(row[1])


async def feedback(
    session: AsyncSession, *, start: datetime, end: datetime, by: str
) -> tuple[list[Said], list[Qualified]]:
    """The feedback given from ``start`` up to ``end`` (rejected and lost outcomes,
    recyclings, disqualifications), each with its lead's groups by ``by`` (a ``GROUPS`` name, or
    ``rule``: each rule of the lead's first MQL); and the leads that became MQLs then, with
    their rules and whether sales rejected them after. Test leads left out."""
    kinds = ("outcome", "recycled", "disqualified")
    given = select(facts_t.c.lead_id, facts_t.c.kind, facts_t.c.detail).where(
        facts_t.c.occurred_at >= start, facts_t.c.occurred_at < end, facts_t.c.kind.in_(kinds)
    )
    items = []
    for row in await session.execute(given):
        kind = row.detail.get("outcome") if row.kind == "outcome" else row.kind
        if kind in KINDS:
            items.append((row.lead_id, kind, row.detail.get("reason")))
    became = select(L.lead_id).where(L.mql_at >= start, L.mql_at < end, L.is_test.is_(False))
    mqls = set(await session.scalars(became))
    ids = {lead_id for lead_id, _, _ in items} | mqls
    if not ids:
        return [], []
    column = GROUPS.get(by, L.ruleset)
    lines = select(L.lead_id, column.label("grp")).where(
        among(session, L.lead_id, ids), L.is_test.is_(False)
    )
    dims = {row.lead_id: row.grp for row in await session.execute(lines)}
    facts = await facts_of(session, [i for i in ids if i in dims])
    first_mql = {
        lead_id: min(
            (f for f in found if f.kind == "mql"), key=lambda f: f.occurred_at, default=None
        )
        for lead_id, found in facts.items()
    }

    def groups(lead_id: UUID) -> list[Any]:
        if by != "rule":
            return [dims[lead_id]]
        mql = first_mql.get(lead_id)
        return list(mql.detail.get("rules") or [None]) if mql else [None]

    said = [Said(groups(i), kind, reason) for i, kind, reason in items if i in dims]
    qualified = []
    for lead_id in sorted(mqls & dims.keys()):
        mql = first_mql.get(lead_id)
        if mql is None:
            continue
        rejected = any(
            f.kind == "outcome" and f.detail.get("outcome") == "rejected"
            and f.occurred_at >= mql.occurred_at
            for f in facts.get(lead_id, [])
        )  # fmt: skip
        rules = [str(r) for r in mql.detail.get("rules") or []]
        qualified.append(Qualified(rules, mql.detail.get("ruleset"), rejected))
    return said, qualified
