"""The analytics reports as the API, the CLI and the console give them: the funnel, the
attribution, goals against actuals, the plan, sales' feedback and the monthly review. The store
counts, the pure modules (funnel, goals, planner, feedback, review) do the maths; here they
meet, in the HTTP bodies' shapes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from services.analytics import store
from services.analytics.feedback import reasons, rules_rejected
from services.analytics.funnel import STAGES, Counts, GroupReport, Rate, Share, Split, rate, report
from services.analytics.goals import CompiledGoals, Key, actuals, month_after, month_days, progress
from services.analytics.planner import STEPS, PlanInputs, PlanInvalid, plan, round_up
from services.analytics.review import GoalLine, Review, SourceLine
from services.analytics.schemas import (
    AttributionView,
    CreditView,
    FeedbackView,
    FunnelGroupView,
    FunnelView,
    GoalsProgressView,
    GroupBy,
    MarketingProgress,
    MonthNeedView,
    MonthProgress,
    PlanInput,
    PlanView,
    ProgressLine,
    ReasonsView,
    RevenueProgress,
    RuleRejectionView,
)
from services.analytics.settings import AnalyticsSettings
from shared.problems import Problem


def days(settings: AnalyticsSettings, first: date, last: date) -> tuple[datetime, datetime]:
    """The days ``first`` to ``last`` of the reporting calendar, both included, as the instants
    from the first's start up to (not including) the day after the last's."""
    zone = settings.definitions.time_zone
    return datetime.combine(first, time(), zone), datetime.combine(
        last + timedelta(days=1), time(), zone
    )


async def funnel(
    session: AsyncSession,
    settings: AnalyticsSettings,
    *,
    start: date,
    end: date,
    group_by: GroupBy | None = None,
    filters: dict[str, Any] | None = None,
) -> FunnelView:
    cohort = store.Cohort(start=start, end=end, where=filters or {})
    if group_by:
        total, groups = await store.counts_and_total(session, cohort, group_by)
    else:
        total, groups = next(iter(await store.counts(session, cohort, None)), None), []
    return FunnelView(
        start=start,
        end=end,
        time_zone=settings.time_zone,
        group_by=group_by,
        filters=_shown(filters),
        total=_view(report(total)) if total is not None else None,
        groups=[_view(report(counts)) for counts in groups],
    )


def _view(found: GroupReport) -> FunnelGroupView:
    group = str(found.group) if isinstance(found.group, UUID) else found.group
    return FunnelGroupView.model_validate(asdict(found) | {"group": group})


async def attribution(
    session: AsyncSession,
    settings: AnalyticsSettings,
    *,
    start: date,
    end: date,
    group_by: GroupBy = "source",
    filters: dict[str, Any] | None = None,
) -> AttributionView:
    """The bookings and opportunities dated from ``start`` to ``end`` (days of the reporting
    calendar, both included), credited to each group (the lead's original source, campaign…),
    to marketing or sales, and to expansion or net-new."""
    since, until = days(settings, start, end)
    cohort = store.Cohort(where=filters or {})
    found = await store.credits(session, cohort, group_by, start=since, end=until)
    none = Split(Share(0, 0.0), Share(0, 0.0), Share(0, 0.0))
    booked = sum((b for _, b, _ in found), none)
    opened = sum((o for _, _, o in found), none)
    return AttributionView(
        start=start,
        end=end,
        time_zone=settings.time_zone,
        group_by=group_by,
        filters=_shown(filters),
        total=_credit(None, booked, opened),
        groups=[_credit(group, b, o) for group, b, o in found],
    )


def _credit(group: Any, booked: Split, opened: Split) -> CreditView:
    return CreditView.model_validate(
        {
            "group": str(group) if isinstance(group, UUID) else group,
            "bookings": {k: asdict(v) for k, v in booked.shares().items()},
            "pipeline": {k: asdict(v) for k, v in opened.shares().items()},
        }
    )


def _shown(filters: dict[str, Any] | None) -> dict[str, Any]:
    return {k: str(v) if isinstance(v, UUID) else v for k, v in (filters or {}).items()}


async def goals_progress(
    session: AsyncSession, settings: AnalyticsSettings, *, months: list[str], today: date
) -> GoalsProgressView:
    """Each month's actuals against the live goals (a version's twelve months by default)."""
    live = await store.live_goals(session)
    zone = settings.definitions.time_zone
    since, until = days(settings, month_days(months[0])[0], month_days(months[-1])[1])
    lines = await store.activity(session, start=since, end=until)
    wanted = set(months)

    def month_of(at: datetime) -> str | None:
        month = at.astimezone(zone).strftime("%Y-%m")
        return month if month in wanted else None

    found = actuals(lines, month_of)
    goals = live[1] if live else None
    return GoalsProgressView(
        version=live[0] if live else None,
        name=goals.spec.name if goals else None,
        time_zone=settings.time_zone,
        months=[_month(month, found, goals, today) for month in months],
    )


GOAL_METRICS = ("mqls", "mql_to_sql", "opportunities", "bookings", "bookings_amount")
"""The metrics goals are set for (team and owner goals too)."""


def _month(
    month: str, found: dict[Key, dict[str, float]], goals: CompiledGoals | None, today: date
) -> MonthProgress:
    totals = found.get((month, None, None), {})
    shared = goals.shared(month) if goals else {}
    target = shared.get("bookings_amount")
    share = goals.spec.revenue.expansion_share if goals else None
    expansion = totals.get("expansion_amount", 0.0)

    def lines(wanted: dict[str, float], actual: dict[str, float]) -> list[ProgressLine]:
        metrics = {m: actual.get(m, 0.0) for m in GOAL_METRICS}
        return [
            ProgressLine.model_validate(asdict(p)) for p in progress(wanted, metrics, month, today)
        ]

    teams = {key[1] for key in found if key[0] == month and key[1]}
    owners = {key[2] for key in found if key[0] == month and key[2]}
    if goals:
        teams |= set(goals.spec.teams)
        owners |= set(goals.spec.owners)
    return MonthProgress(
        month=month,
        shared=lines(shared, totals),
        revenue=RevenueProgress(
            goal=target,
            expansion_goal=target * share if target is not None and share is not None else None,
            net_new_goal=target * (1 - share) if target is not None and share is not None else None,
            expansion=expansion,
            net_new=totals.get("bookings_amount", 0.0) - expansion,
        ),
        marketing=MarketingProgress(
            bookings=int(totals.get("marketing_bookings", 0)),
            amount=totals.get("marketing_amount", 0.0),
        ),
        teams={
            t: lines(goals.of_team(t, month) if goals else {}, found.get((month, t, None), {}))
            for t in sorted(teams)
        },
        owners={
            o: lines(goals.of_owner(o, month) if goals else {}, found.get((month, None, o), {}))
            for o in sorted(owners)
        },
    )


RATE_NAMES = {step: f"{step[0]}_to_{step[1]}" for step in STEPS}
"""How a step's rate is named in a plan's inputs (``mql_to_sql``…); its lag adds ``_days``."""
PLAN_INPUTS = (
    "target", "expansion_share", "deal_size", *RATE_NAMES.values(),
    *(f"{name}_days" for name in RATE_NAMES.values()),
)  # fmt: skip


async def revenue_plan(
    session: AsyncSession,
    settings: AnalyticsSettings,
    *,
    today: date,
    given: dict[str, float],
    months: list[str] | None = None,
) -> PlanView:
    """The reverse funnel for the live goals' twelve months (or ``months``), each input
    ``given``, else from the goals, else measured over the last 365 days of cohorts."""
    live = await store.live_goals(session)
    goals = live[1] if live else None
    measured = await _measured(session, today)
    inputs: dict[str, PlanInput] = {}

    def pick(name: str, from_goals: float | None = None) -> float:
        if name in given:
            inputs[name] = PlanInput(value=given[name], origin="given")
        elif from_goals is not None:
            inputs[name] = PlanInput(value=from_goals, origin="goals")
        elif measured.get(name) is not None:
            inputs[name] = PlanInput(value=measured[name], origin="measured")
        else:
            raise Problem(  # 409: the request is sound; what it needs is not here yet
                409, "Conflict",
                f"no {name} in the goals nor in the funnel's history: give {name}", field=name,
            )  # fmt: skip
        return inputs[name].value

    spec = goals.spec if goals else None
    target = pick("target", spec.revenue.target if spec else None)
    share = pick("expansion_share", spec.revenue.expansion_share if spec else None)
    deal = pick("deal_size", goals_deal_size(spec.deal_size, measured) if spec else None)
    rates = {step: pick(RATE_NAMES[step]) for step in STEPS}
    lags = {step: pick(f"{RATE_NAMES[step]}_days") for step in STEPS}
    planned = months or (
        goals.months if goals else [month_after(today.strftime("%Y-%m"), i) for i in range(12)]
    )
    opportunities, sqls = await store.open_pipeline(session)
    try:
        found = plan(
            PlanInputs(
                months=planned,
                target=target,
                expansion_share=share,
                deal_size=deal,
                rates=rates,
                lag_days=lags,
                sources=measured_sources(measured),
                open_opportunities=opportunities,
                open_sqls=sqls,
            )  # fmt: skip
        )
    except PlanInvalid as invalid:
        raise Problem(422, "Unprocessable Content", str(invalid), field="rates") from None
    return PlanView(
        months=planned,
        inputs=inputs,
        revenue=found.revenue,
        expansion_revenue=found.expansion_revenue,
        net_new_revenue=found.net_new_revenue,
        bookings=round_up(found.bookings),
        needs=[
            MonthNeedView(
                month=m.month,
                bookings=round_up(m.bookings),
                opportunities=round_up(m.opportunities),
                sqls=round_up(m.sqls),
                mqls=round_up(m.mqls),
                inquiries=round_up(m.inquiries),
                expected_bookings=m.expected_bookings,
            )  # fmt: skip
            for m in found.months
        ],
        late_inquiries=round_up(found.late),
        inquiries_by_source={s: round_up(n) for s, n in found.inquiries_by_source.items()},
        open_opportunities=opportunities,
        open_sqls=sqls,
        short_from=found.short_from,
    )


async def _measured(session: AsyncSession, today: date) -> dict[str, Any]:
    """The funnel of the last 365 days of cohorts: each step's in-order rate and median lag
    (days), the average booking, and per source its bookings and inquiries."""
    cohort = store.Cohort(start=today - timedelta(days=364), end=today)
    total, sources = await store.counts_and_total(session, cohort, "source")
    if total is None:
        return {}
    found = report(total)
    measured: dict[str, Any] = {"deal_size": found.average_booking}
    for line, lag_ in zip(found.stages[1:], found.lags, strict=True):
        step = (lag_.from_stage, lag_.to_stage)
        rated = line.in_order_rate
        measured[RATE_NAMES[step]] = rated.rate if rated and rated.converted else None
        measured[f"{RATE_NAMES[step]}_days"] = (
            lag_.p50_s / 86400 if lag_.p50_s is not None else None
        )
    measured["sources"] = {str(c.group): (c.reached[-1], c.reached[0]) for c in sources}
    measured["segments"] = {
        c.group: c.reached[-1] for c in await store.counts(session, cohort, "segment")
    }
    return measured


def goals_deal_size(sizes: Mapping[str, float], measured: Mapping[str, Any]) -> float | None:
    """The average deal the goals imply: their size per segment weighted by the segments' share
    of the last year's bookings (a segment without a size, or no segment: ``default``); without
    bookings, ``default`` alone. None when the goals give no size that applies."""
    booked: Mapping[Any, int] = measured.get("segments", {})
    total = sum(booked.values())
    if total == 0:
        return sizes.get("default")
    weighted = 0.0
    for segment, count in booked.items():
        if count == 0:
            continue
        size = sizes.get(segment) if segment is not None else None
        size = size if size is not None else sizes.get("default")
        if size is None:
            return None
        weighted += size * count / total
    return weighted


def measured_sources(measured: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Source → (its share of the bookings, its inquiry → booking yield)."""
    sources: dict[str, tuple[int, int]] = measured.get("sources", {})
    booked = sum(b for b, _ in sources.values())
    return {
        source: (bookings / booked, bookings / inquiries)
        for source, (bookings, inquiries) in sources.items()
        if booked and inquiries
    }


async def feedback(
    session: AsyncSession,
    settings: AnalyticsSettings,
    *,
    start: date,
    end: date,
    by: str,
    public_url: str,
) -> FeedbackView:
    """Sales' feedback of the period (days of the reporting calendar, both included) by
    ``by``, and the rules behind the period's MQLs that sales rejected most."""
    since, until = days(settings, start, end)
    said, qualified = await store.feedback(session, start=since, end=until, by=by)
    return FeedbackView(
        start=start,
        end=end,
        time_zone=settings.time_zone,
        group_by=by,
        groups=[ReasonsView.model_validate(asdict(line)) for line in reasons(said)],
        rules=[RuleRejectionView.model_validate(asdict(r)) for r in rules_rejected(qualified)],
        backtest=f"{public_url.rstrip('/')}/v1/rulesets/{{version}}/backtest",
    )


class SourceAttainment(Protocol):
    """A source's first-response attainment (the SLA monitor's ``attainment.Attainment``)."""

    @property
    def clocks(self) -> int: ...
    @property
    def attainment_pct(self) -> float: ...
    @property
    def owner_p50_s(self) -> float | None: ...


class SlaBySource(Protocol):
    """First-response attainment by source over a period (the SLA monitor:
    services/sla_monitor/analytics.py), handed in by the composition root."""

    async def __call__(
        self, session: AsyncSession, since: datetime, until: datetime, /
    ) -> Mapping[str, SourceAttainment]: ...


async def monthly_review(
    session: AsyncSession,
    settings: AnalyticsSettings,
    *,
    month: str,
    today: date,
    sla: SlaBySource | None,
) -> Review:
    """The review of ``month`` (its cohort, its bookings, feedback and clocks)."""
    first, last = month_days(month)
    since, until = days(settings, first, last)
    cohort = store.Cohort(start=first, end=last)
    funnels = {str(c.group): c for c in await store.counts(session, cohort, "source")}
    credited = {
        str(group): booked.all.amount
        for group, booked, _ in await store.credits(
            session, store.Cohort(), "source", start=since, end=until
        )
    }
    attained = await sla(session, since, until) if sla is not None else {}
    said, qualified = await store.feedback(session, start=since, end=until, by="source")
    progress_ = await goals_progress(session, settings, months=[month], today=today)
    names = sorted(set(funnels) | set(credited) | set(attained))
    return Review(
        month=month,
        time_zone=settings.time_zone,
        sources=[
            _source(name, funnels.get(name), attained.get(name), credited.get(name, 0.0))
            for name in names
        ],
        goals=[
            GoalLine(line.metric, line.goal, line.actual, line.gap)
            for line in progress_.months[0].shared
        ],
        goals_version=progress_.version,
        reasons=[
            (str(line.group), kind, reason, count)
            for line in reasons(said)
            for kind, counted in line.reasons.items()
            for reason, count in counted.items()
        ],
        rules=[
            (r.rule, r.qualified, r.rejected, r.rejection_rate) for r in rules_rejected(qualified)
        ],
    )


def _source(
    name: str, counts: Counts | None, attained: SourceAttainment | None, booked: float
) -> SourceLine:
    in_order = list(counts.in_order) if counts else [0] * len(STAGES)
    mql_to_sql, sql_to_booking = rate(in_order[2], in_order[1]), rate(in_order[4], in_order[2])

    def interval(found: Rate) -> tuple[float, float] | None:
        if found.small and found.low is not None and found.high is not None:
            return found.low, found.high
        return None

    return SourceLine(
        source=name,
        inquiries=in_order[0],
        mqls=in_order[1],
        sqls=in_order[2],
        bookings=in_order[4],
        mql_to_sql=mql_to_sql.rate,
        mql_to_sql_interval=interval(mql_to_sql),
        sql_to_booking=sql_to_booking.rate,
        sql_to_booking_interval=interval(sql_to_booking),
        sla_clocks=attained.clocks if attained else 0,
        sla_attainment_pct=attained.attainment_pct if attained else None,
        sla_p50_s=attained.owner_p50_s if attained else None,
        booked_amount=booked,
    )
