"""``leadflow funnel show``: the funnel by cohort, as the API gives it; ``leadflow funnel
rebuild``: fold every lead's funnel line again from the kept facts (after a definition such as the
segments or the reporting time zone changed), with a progress bar."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from uuid import UUID

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.analytics import reports, review_files, store
from services.analytics.api import period, period_months
from services.analytics.goals import MONTH, month_after
from services.analytics.reports import GOAL_METRICS, PLAN_INPUTS, SlaBySource
from services.analytics.review import Review
from services.analytics.schemas import (
    AttributionView,
    FeedbackView,
    FunnelGroupView,
    FunnelView,
    GoalsProgressView,
    GroupBy,
    PlanView,
    ProgressLine,
    RateView,
)
from services.analytics.settings import AnalyticsConfig
from services.analytics.versions import GOALS
from shared.cli import on_db, show, stdout, with_sessions
from shared.cosign.cli import add_commands

funnel_app = typer.Typer(
    help="The funnel by cohort (show), and its lines rebuilt (rebuild).", no_args_is_help=True
)
goals_app = typer.Typer(
    help="Goals versions (validate, propose, approve by each side, activate, diff, history) "
    "and their progress.",
    no_args_is_help=True,
)
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output")]
View = Literal["in-order", "reached"]


def _day(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is no date (YYYY-MM-DD)", param_hint=name) from None


@funnel_app.command("show")
def show_funnel(
    start: Annotated[
        str | None, typer.Option("--from", help="First cohort day, YYYY-MM-DD")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Last cohort day (default: today)")
    ] = None,
    by: Annotated[str | None, typer.Option(help="Group by: source, campaign, medium, …")] = None,
    source: Annotated[str | None, typer.Option(help="Only this source")] = None,
    campaign: Annotated[str | None, typer.Option(help="Only this campaign")] = None,
    segment: Annotated[str | None, typer.Option(help="Only this segment")] = None,
    team: Annotated[str | None, typer.Option(help="Only this team")] = None,
    owner: Annotated[str | None, typer.Option(help="Only this owner (rep id)")] = None,
    view: Annotated[str, typer.Option(help="in-order or reached")] = "in-order",
    as_json: JsonOption = False,
) -> None:
    """Counts and conversion inquiry → MQL → SQL → opportunity → booking of the leads whose
    first inquiry arrived in the period (default: the last 365 days), with 95 % Wilson
    intervals where a base is small, and the median time between stages."""
    if by is not None and by not in store.GROUPS:
        raise typer.BadParameter(f"one of {', '.join(store.GROUPS)}", param_hint="--by")
    if view not in ("in-order", "reached"):
        raise typer.BadParameter("in-order or reached", param_hint="--view")
    first, last = _day(start, "--from"), _day(end, "--to")
    given: dict[str, Any] = {
        "source": source, "campaign": campaign, "segment": segment, "team": team,
        "owner": _owner(owner),
    }  # fmt: skip

    async def work(session: AsyncSession, settings: AnalyticsConfig) -> FunnelView:
        since, to = period(settings.analytics, first, last)
        filters = {k: v for k, v in given.items() if v is not None}
        group_by: GroupBy | None = by  # type: ignore[assignment]
        return await reports.funnel(
            session, settings.analytics, start=since, end=to, group_by=group_by, filters=filters
        )

    found = on_db(work, write=False, settings=AnalyticsConfig)
    if as_json:
        show(found.model_dump(mode="json"), True)
        return
    _print(found, view)  # type: ignore[arg-type]


def _owner(value: str | None) -> UUID | None:
    try:
        return UUID(value) if value is not None else None
    except ValueError:
        raise typer.BadParameter(f"{value!r} is no rep id", param_hint="--owner") from None


def _print(found: FunnelView, view: View) -> None:
    title = f"Funnel, cohorts {found.start} – {found.end} ({found.time_zone}), {view}"
    table = Table(title=title)
    table.add_column(found.group_by or "", justify="left")
    for heading in ("inquiries", "MQL", "SQL", "opportunity", "booking", "booked amount"):
        table.add_column(heading, justify="right")
    lines = ([found.total] if found.total else []) + found.groups
    for index, line in enumerate(lines):
        name = "all" if index == 0 else ("(none)" if line.group is None else str(line.group))
        table.add_row(name, *_cells(line, view), f"{line.bookings_amount:,.2f}")
    stdout().print(table)
    if found.total:
        for lag in found.total.lags:
            median = "–" if lag.p50_s is None else str(timedelta(seconds=round(lag.p50_s)))
            stdout().print(f"  {lag.from_stage} → {lag.to_stage}: median {median} ({lag.leads})")


def _cells(line: FunnelGroupView, view: View) -> list[str]:
    cells = []
    for stage in line.stages:
        count = stage.in_order if view == "in-order" else stage.reached
        rated = stage.in_order_rate if view == "in-order" else stage.reached_rate
        cells.append(f"{count:,}" + (f" ({_rate(rated)})" if rated else ""))
    return cells


def _rate(rated: RateView) -> str:
    if rated.rate is None:
        return "–"
    if rated.small and rated.low is not None and rated.high is not None:
        return f"{rated.low:.0%}–{rated.high:.0%}"
    return f"{rated.rate:.1%}"


@funnel_app.command("attribution")
def show_attribution(
    start: Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last day (default: today)")] = None,
    by: Annotated[str, typer.Option(help="Credit to: source, campaign, medium, …")] = "source",
    as_json: JsonOption = False,
) -> None:
    """Bookings and opportunities dated in the period (default: the last 365 days), credited to
    the lead's original source (or --by), to marketing or sales, to expansion or net-new."""
    if by not in store.GROUPS:
        raise typer.BadParameter(f"one of {', '.join(store.GROUPS)}", param_hint="--by")
    first, last = _day(start, "--from"), _day(end, "--to")

    async def work(session: AsyncSession, settings: AnalyticsConfig) -> AttributionView:
        since, to = period(settings.analytics, first, last)
        return await reports.attribution(
            session,
            settings.analytics,
            start=since,
            end=to,
            group_by=by,  # type: ignore[arg-type]
        )

    found = on_db(work, write=False, settings=AnalyticsConfig)
    if as_json:
        show(found.model_dump(mode="json"), True)
        return
    table = Table(title=f"Bookings and pipeline credited, {found.start} – {found.end}")
    table.add_column(found.group_by)
    for heading in ("bookings", "amount", "marketing", "sales", "expansion", "net-new", "pipeline"):
        table.add_column(heading, justify="right")
    for index, credit in enumerate([found.total, *found.groups]):
        name = "all" if index == 0 else ("(none)" if credit.group is None else str(credit.group))
        booked = credit.bookings
        table.add_row(
            name, f"{booked.all.count:,}", f"{booked.all.amount:,.2f}",
            f"{booked.marketing.amount:,.2f}", f"{booked.sales.amount:,.2f}",
            f"{booked.expansion.amount:,.2f}", f"{booked.net_new.amount:,.2f}",
            f"{credit.pipeline.all.amount:,.2f}",
        )  # fmt: skip
    stdout().print(table)


@funnel_app.command("rebuild")
def rebuild(as_json: JsonOption = False) -> None:
    """Fold every lead's funnel line again from the facts the consumer kept, in chunks of 2,000
    leads a transaction, beside a running consumer. Run it after changing a definition
    (LEADFLOW_ANALYTICS__SEGMENTS, __TIME_ZONE)."""

    async def work(sessions: async_sessionmaker[AsyncSession], settings: AnalyticsConfig) -> int:
        definitions = settings.analytics.definitions
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        done = 0
        with Progress(*columns, TimeElapsedColumn(), console=Console(stderr=True)) as bar:
            task = bar.add_task("rebuilding funnel lines", total=None)
            async for done, total in store.rebuild(sessions, definitions):
                bar.update(task, completed=done, total=total)
        return done

    leads = with_sessions(work, settings=AnalyticsConfig)
    typer.echo(f'{{"leads": {leads}}}' if as_json else f"rebuilt the lines of {leads:,} leads")


add_commands(
    goals_app,
    GOALS,
    file_help="Goals YAML",
    validate_help="Check a goals file: YAML, months, revenue target and shares, counts and rates.",
)


@goals_app.command("progress")
def show_progress(
    start: Annotated[str | None, typer.Option("--from", help="First month, YYYY-MM")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last month, YYYY-MM")] = None,
    as_json: JsonOption = False,
) -> None:
    """Each month's actuals against the live goals: gap, run-rate forecast for the month under
    way, revenue by expansion and net-new, marketing's bookings (default: the goals' months)."""
    for name, value in (("--from", start), ("--to", end)):
        if value is not None and not MONTH.match(value):
            raise typer.BadParameter(f"{value!r} is no month (YYYY-MM)", param_hint=name)

    async def work(session: AsyncSession, settings: AnalyticsConfig) -> GoalsProgressView:
        today = datetime.now(settings.analytics.definitions.time_zone).date()
        live = await store.live_goals(session)
        months = period_months(live[1].months if live else None, start, end, today)
        return await reports.goals_progress(session, settings.analytics, months=months, today=today)

    found = on_db(work, write=False, settings=AnalyticsConfig)
    if as_json:
        show(found.model_dump(mode="json"), True)
        return
    name = f"{found.name} (v{found.version})" if found.version else "no goals live"
    table = Table(title=f"Goals: {name}, {found.time_zone}")
    table.add_column("month")
    for metric in GOAL_METRICS:
        table.add_column(metric.replace("_", " "), justify="right")
    for month in found.months:
        table.add_row(month.month, *(_cell(line) for line in month.shared))
    stdout().print(table)


def _cell(line: ProgressLine) -> str:
    rate = line.metric == "mql_to_sql"

    def number(value: float) -> str:
        return f"{value:.0%}" if rate else f"{value:,.0f}"

    text = number(line.actual)
    if line.goal is not None:
        text += f" / {number(line.goal)}"
    if line.forecast is not None:
        text += f" (→ {number(line.forecast)})"
    return text


@goals_app.command("plan")
def show_plan(
    start: Annotated[str | None, typer.Option("--from", help="First of twelve months")] = None,
    given: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="An input by hand, NAME=VALUE: target, expansion_share, deal_size, "
            "mql_to_sql (a step's rate), mql_to_sql_days (its lag)…; repeatable",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The revenue plan worked backwards from the live goals: net-new bookings, opportunities,
    SQLs, MQLs and inquiries needed month by month and by source, with the funnel's measured
    rates and lags (or those --set by hand), and the month the open pipeline falls short."""
    if start is not None and not MONTH.match(start):
        raise typer.BadParameter(f"{start!r} is no month (YYYY-MM)", param_hint="--from")
    inputs = dict(_setting(item) for item in given or [])

    async def work(session: AsyncSession, settings: AnalyticsConfig) -> PlanView:
        today = datetime.now(settings.analytics.definitions.time_zone).date()
        months = [month_after(start, i) for i in range(12)] if start else None
        return await reports.revenue_plan(
            session, settings.analytics, today=today, given=inputs, months=months
        )

    found = on_db(work, write=False, settings=AnalyticsConfig)
    if as_json:
        show(found.model_dump(mode="json"), True)
        return
    table = Table(title=f"Plan: {found.net_new_revenue:,.0f} net-new of {found.revenue:,.0f}")
    for heading in ("month", "bookings", "opportunities", "SQLs", "MQLs", "inquiries", "open →"):
        table.add_column(heading, justify="right")
    for need in found.needs:
        table.add_row(
            need.month, str(need.bookings), str(need.opportunities), str(need.sqls),
            str(need.mqls), str(need.inquiries), f"{need.expected_bookings:.1f}",
        )  # fmt: skip
    stdout().print(table)
    for name, used in found.inputs.items():
        stdout().print(f"  {name}: {used.value:,.4g} ({used.origin})")
    short = found.short_from or "never: it covers the plan"
    stdout().print(f"  the open pipeline falls short from {short}")


def _setting(item: str) -> tuple[str, float]:
    name, _, value = item.partition("=")
    if name not in PLAN_INPUTS:
        raise typer.BadParameter(f"{name!r}: one of {', '.join(PLAN_INPUTS)}", param_hint="--set")
    try:
        return name, float(value)
    except ValueError:
        raise typer.BadParameter(f"{item!r}: NAME=number", param_hint="--set") from None


def write_review(month: str, folder: Path, sla: SlaBySource | None, *, as_json: bool) -> None:
    """``leadflow report monthly``: the review of ``month`` written to ``folder`` (the command
    is the composition root's, which hands in the SLA monitor's attainment)."""
    if not MONTH.match(month):
        raise typer.BadParameter(f"{month!r} is no month (YYYY-MM)", param_hint="--month")

    async def work(session: AsyncSession, settings: AnalyticsConfig) -> Review:
        today = datetime.now(settings.analytics.definitions.time_zone).date()
        return await reports.monthly_review(
            session, settings.analytics, month=month, today=today, sla=sla
        )

    review = on_db(work, write=False, settings=AnalyticsConfig)
    written = review_files.write(review, folder)
    if as_json:
        show({"month": month, "files": [str(p) for p in written]}, True)
        return
    for path in written:
        typer.echo(f"wrote {path}")


@funnel_app.command("feedback")
def show_feedback(
    start: Annotated[str | None, typer.Option("--from", help="First day, YYYY-MM-DD")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last day (default: today)")] = None,
    by: Annotated[str, typer.Option(help="source, campaign, ruleset, owner, team… or rule")] = (
        "source"
    ),
    as_json: JsonOption = False,
) -> None:
    """Sales' feedback of the period (default: the last 365 days): rejection, loss, recycle and
    disqualification reasons by group, and the rules behind the MQLs sales rejected most."""
    if by != "rule" and by not in store.GROUPS:
        raise typer.BadParameter(f"rule or one of {', '.join(store.GROUPS)}", param_hint="--by")
    first, last = _day(start, "--from"), _day(end, "--to")

    async def work(session: AsyncSession, settings: AnalyticsConfig) -> FeedbackView:
        since, to = period(settings.analytics, first, last)
        return await reports.feedback(
            session, settings.analytics, start=since, end=to, by=by,
            public_url=settings.http.public_url,
        )  # fmt: skip

    found = on_db(work, write=False, settings=AnalyticsConfig)
    if as_json:
        show(found.model_dump(mode="json"), True)
        return
    table = Table(title=f"Sales' feedback, {found.start} – {found.end}, by {found.group_by}")
    for heading in (found.group_by, "kind", "reason", "leads"):
        table.add_column(heading)
    for group in found.groups:
        for kind, counted in group.reasons.items():
            for reason, count in counted.items():
                table.add_row(str(group.group), kind, reason, str(count))
    stdout().print(table)
    for rule in found.rules[:10]:
        stdout().print(
            f"  {rule.rule}: {rule.rejected} of {rule.qualified} rejected by sales "
            f"({rule.rejection_rate:.0%})"
        )
