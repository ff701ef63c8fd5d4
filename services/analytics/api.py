"""HTTP routes of the analytics service: the funnel by cohort (both views, rates with their
intervals, the time between stages, the bookings), the attribution of a period's bookings and
pipeline, sales' feedback, the goals' versions (shared/cosign) and their progress, the plan worked
backwards, and the monthly review (page and zip). Every route needs a secret key; bad input is
an RFC 9457 problem naming the field."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import HTMLResponse

from services.analytics import reports, review_files, store
from services.analytics.goals import month_after
from services.analytics.review import Review
from services.analytics.schemas import (
    AttributionView,
    FeedbackView,
    FunnelView,
    GoalsProgressView,
    GroupBy,
    PlanView,
)
from services.analytics.settings import AnalyticsSettings, analytics_config
from services.analytics.versions import GOALS
from shared import problems
from shared.auth import secret_key
from shared.cosign.api import router_for
from shared.deps import RuntimeDep
from shared.params import Day, Month
from shared.problems import Problem
from shared.runtime import Runtime

ERRORS = problems.documented(401, 403, 422)
DEFAULT_DAYS = 365
MAX_MONTHS = 36
Text = Annotated[str | None, Query(min_length=1, max_length=200)]

router = APIRouter(
    prefix="/v1", tags=["analytics"], responses=ERRORS, dependencies=[Depends(secret_key)]
)
router.include_router(
    router_for(
        GOALS, prefix="/goals/versions", responses={404: problems.PROBLEM, 409: problems.PROBLEM}
    )
)
MonthQuery = Annotated[Month | None, Query(description="YYYY-MM")]


StartDay = Annotated[
    Day | None, Query(alias="from", description="First day (default: a year before `to`)")
]
EndDay = Annotated[
    Day | None, Query(alias="to", description="Last day (default: today, reporting time zone)")
]


async def dimension_filters(
    source: Text = None,
    campaign: Text = None,
    medium: Text = None,
    ad_platform: Text = None,
    segment: Text = None,
    team: Text = None,
    owner: Annotated[UUID | None, Query(description="The owner's rep id")] = None,
    expansion: Annotated[
        bool | None, Query(description="true: existing customers; false: net-new")
    ] = None,
    ruleset: Text = None,
) -> dict[str, Any]:
    """The dimensions a report is narrowed to, each to one value."""
    given = {
        "source": source, "campaign": campaign, "medium": medium, "ad_platform": ad_platform,
        "segment": segment, "team": team, "owner": owner, "expansion": expansion,
        "ruleset": ruleset,
    }  # fmt: skip
    return {name: value for name, value in given.items() if value is not None}


Filters = Annotated[dict[str, Any], Depends(dimension_filters)]


def period(settings: AnalyticsSettings, start: date | None, end: date | None) -> tuple[date, date]:
    """``start`` to ``end``, both included: by default the ``DEFAULT_DAYS`` up to today."""
    end = end or datetime.now(settings.definitions.time_zone).date()
    start = start or end - timedelta(days=DEFAULT_DAYS - 1)
    if start > end:
        raise Problem(422, "Unprocessable Content", "from must not be after to", field="from")
    return start, end


@router.get("/funnel", response_model=FunnelView, summary="The funnel by cohort")
async def funnel(
    runtime: RuntimeDep,
    filters: Filters,
    start: Annotated[Day | None, Query(alias="from", description="First cohort day")] = None,
    end: Annotated[Day | None, Query(alias="to", description="Last cohort day")] = None,
    by: Annotated[GroupBy | None, Query(description="Group by this dimension")] = None,
) -> FunnelView:
    """Counts and conversion rates inquiry → MQL → SQL → opportunity → booking of the leads
    whose first inquiry arrived in the period (default: the 365 days up to today): "reached"
    (by any path) and "in order" (every stage before, no later than the next) with 95 % Wilson
    intervals, the median and p90 time between stages, and the bookings with their amounts.
    Test leads are left out."""
    settings = analytics_config(runtime.settings).analytics
    first, last = period(settings, start, end)
    async with runtime.sessions() as session:
        return await reports.funnel(
            session, settings, start=first, end=last, group_by=by, filters=filters
        )


@router.get(
    "/funnel/attribution", response_model=AttributionView, summary="Bookings and pipeline credited"
)
async def attribution(
    runtime: RuntimeDep,
    filters: Filters,
    start: StartDay = None,
    end: EndDay = None,
    by: Annotated[GroupBy, Query(description="Credit to this dimension of the lead")] = "source",
) -> AttributionView:
    """The bookings (booked or won) and the opportunities dated in the period (default: the 365
    days up to today), each credited to the lead's original source (or campaign, medium…: `by`),
    to marketing (the lead was an MQL before its opportunity) or sales, and to expansion
    (an existing customer's) or net-new. Test leads are left out."""
    settings = analytics_config(runtime.settings).analytics
    first, last = period(settings, start, end)
    async with runtime.sessions() as session:
        return await reports.attribution(
            session, settings, start=first, end=last, group_by=by, filters=filters
        )


@router.get("/goals/progress", response_model=GoalsProgressView, summary="Goals against actuals")
async def goals_progress(
    runtime: RuntimeDep,
    start: Annotated[MonthQuery, Query(alias="from")] = None,
    end: Annotated[MonthQuery, Query(alias="to")] = None,
) -> GoalsProgressView:
    """Each month's actuals against the live goals version: the shared goals (MQLs, MQL → SQL,
    opportunities, bookings and their amount) with the gap and, for the month under way, the
    run-rate forecast; the revenue target's expansion and net-new shares; marketing's bookings
    (from its MQLs); each team's and owner's goals. Default: the goals' twelve months, or
    without goals the last twelve up to this one (actuals alone)."""
    settings = analytics_config(runtime.settings).analytics
    today = datetime.now(settings.definitions.time_zone).date()
    async with runtime.sessions() as session:
        live = await store.live_goals(session)
        months = period_months(live[1].months if live else None, start, end, today)
        return await reports.goals_progress(session, settings, months=months, today=today)


def period_months(
    planned: list[str] | None, start: str | None, end: str | None, today: date
) -> list[str]:
    """The months from ``start`` to ``end``, both included: by default the goals' twelve (or
    the twelve up to this month); at most 36."""
    this = today.strftime("%Y-%m")
    last = end or (planned[-1] if planned else this)
    first = start or (planned[0] if planned and not end else month_after(last, -11))
    months = [first]
    while months[-1] < last and len(months) <= MAX_MONTHS:
        months.append(month_after(months[-1], 1))
    if first > last:
        raise Problem(422, "Unprocessable Content", "from must not be after to", field="from")
    if len(months) > MAX_MONTHS:
        raise Problem(
            422, "Unprocessable Content", f"at most {MAX_MONTHS} months at once", field="to"
        )
    return months


# Bounded so the reverse funnel's divisions stay finite: the most inquiries a plan can ask for
# is MAX_AMOUNT / MIN_DEAL / MIN_RATE⁴ = 10²⁴, which is still a number.
MAX_AMOUNT, MIN_DEAL, MIN_RATE = 1e12, 1.0, 0.001
Rate = Annotated[float | None, Query(ge=MIN_RATE, le=1, description="A share, 0.001 to 1")]
Days = Annotated[float | None, Query(ge=0, le=3650)]


async def plan_given(
    target: Annotated[
        float | None, Query(gt=0, le=MAX_AMOUNT, description="Revenue to book")
    ] = None,
    expansion_share: Annotated[float | None, Query(ge=0, le=1)] = None,
    deal_size: Annotated[
        float | None, Query(ge=MIN_DEAL, le=MAX_AMOUNT, description="The average booking")
    ] = None,
    inquiry_to_mql: Rate = None,
    mql_to_sql: Rate = None,
    sql_to_opportunity: Rate = None,
    opportunity_to_booking: Rate = None,
    inquiry_to_mql_days: Days = None,
    mql_to_sql_days: Days = None,
    sql_to_opportunity_days: Days = None,
    opportunity_to_booking_days: Days = None,
) -> dict[str, float]:
    """The plan's inputs given by hand (a new source or experiment without history)."""
    given = {
        "target": target, "expansion_share": expansion_share, "deal_size": deal_size,
        "inquiry_to_mql": inquiry_to_mql, "mql_to_sql": mql_to_sql,
        "sql_to_opportunity": sql_to_opportunity,
        "opportunity_to_booking": opportunity_to_booking,
        "inquiry_to_mql_days": inquiry_to_mql_days, "mql_to_sql_days": mql_to_sql_days,
        "sql_to_opportunity_days": sql_to_opportunity_days,
        "opportunity_to_booking_days": opportunity_to_booking_days,
    }  # fmt: skip
    return {name: value for name, value in given.items() if value is not None}


@router.get(
    "/plan",
    response_model=PlanView,
    summary="The revenue plan, worked backwards",
    responses=problems.documented(409),
)
async def revenue_plan(
    runtime: RuntimeDep,
    given: Annotated[dict[str, float], Depends(plan_given)],
    start: Annotated[MonthQuery, Query(alias="from", description="First of twelve months")] = None,
) -> PlanView:
    """From the revenue target and its expansion share (the live goals, or given), the
    net-new bookings, opportunities, SQLs, MQLs and inquiries needed month by month and by
    source, using the funnel's measured rates and median lags over the last 365 days of cohorts
    (or rates and lags given by hand), and the month the pipeline open now falls short. Each
    input says where it came from."""
    settings = analytics_config(runtime.settings).analytics
    today = datetime.now(settings.definitions.time_zone).date()
    months = [month_after(start, i) for i in range(12)] if start else None
    async with runtime.sessions() as session:
        return await reports.revenue_plan(
            session, settings, today=today, given=given, months=months
        )


FeedbackBy = Literal[
    "source", "campaign", "medium", "ad_platform", "segment", "team", "owner", "ruleset", "rule",
]  # fmt: skip


@router.get("/funnel/feedback", response_model=FeedbackView, summary="Sales' feedback")
async def sales_feedback(
    runtime: RuntimeDep,
    start: StartDay = None,
    end: EndDay = None,
    by: Annotated[FeedbackBy, Query(description="Count by this (rule: each qualifying rule)")] = (
        "source"
    ),
) -> FeedbackView:
    """Rejection, loss, recycle and disqualification reasons given in the period (default: the
    365 days up to today), counted by source, campaign, ruleset, owner, team… or by each rule
    that qualified the lead; and the rules behind the period's MQLs, the ones sales rejected
    most first, with where to backtest a proposed ruleset. Test leads are left out."""
    settings = analytics_config(runtime.settings).analytics
    first, last = period(settings, start, end)
    async with runtime.sessions() as session:
        return await reports.feedback(
            session, settings, start=first, end=last, by=by,
            public_url=runtime.settings.http.public_url,
        )  # fmt: skip


MonthPath = Annotated[Month, Path(description="YYYY-MM")]
REVIEW_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
"""The review page stands alone: its styles and charts are inline, it runs no script."""


async def review_of(request: Request, runtime: Runtime, month: str) -> Review:
    """``month``'s review, with the SLA monitor's attainment the composition root handed in."""
    settings = analytics_config(runtime.settings).analytics
    today = datetime.now(settings.definitions.time_zone).date()
    sla: reports.SlaBySource | None = getattr(request.app.state, "sla_by_source", None)
    async with runtime.sessions() as session:
        return await reports.monthly_review(session, settings, month=month, today=today, sla=sla)


@router.get(
    "/reports/monthly/{month}",
    response_class=HTMLResponse,
    summary="The monthly source review (HTML)",
)
async def monthly_review(request: Request, runtime: RuntimeDep, month: MonthPath) -> HTMLResponse:
    """The review the monthly sales–marketing meeting opens as it is: per source, the month's
    cohort and its MQL → SQL and SQL → booking rates beside first-response SLA attainment and
    the month's bookings; goals against actuals; sales' feedback reasons and the rules behind
    rejected MQLs; with charts."""
    page = review_files.html(await review_of(request, runtime, month))
    return HTMLResponse(page, headers={"Content-Security-Policy": REVIEW_CSP})


@router.get(
    "/reports/monthly/{month}/archive",
    response_class=Response,
    responses={200: {"content": {"application/zip": {}}}},
    summary="The monthly source review: the page and its tables as CSV, zipped",
)
async def monthly_archive(request: Request, runtime: RuntimeDep, month: MonthPath) -> Response:
    review = await review_of(request, runtime, month)
    body = review_files.archive(review, review_files.html(review))
    disposition = f'attachment; filename="review-{month}.zip"'
    return Response(
        body, media_type="application/zip", headers={"Content-Disposition": disposition}
    )
