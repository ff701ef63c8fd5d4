"""The ops console's analytics pages, beside the SLA board (``/ops``): the funnel, the revenue
plan and the monthly review, rendered here with their charts (SVG, no script). Signed in with
the board's session: the composition root hands its check in (``app.state.ops_session``), and a
page without a session sends the browser to the board's sign-in. Read only."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from services.analytics import reports, review_files, store
from services.analytics.api import EndDay, MonthPath, MonthQuery, StartDay, period, review_of
from services.analytics.goals import month_after
from services.analytics.review import bar_chart
from services.analytics.review_files import duration, pages
from services.analytics.schemas import GroupBy, RateView
from services.analytics.settings import analytics_config
from shared.deps import RuntimeDep
from shared.pages import PAGE_HEADERS
from shared.problems import Problem

SIGN_IN = "/ops/sign-in"

router = APIRouter(prefix="/ops", tags=["ops console"], include_in_schema=False)


class Caller(Protocol):
    @property
    def name(self) -> str: ...


class OpsSession(Protocol):
    @property
    def caller(self) -> Caller: ...


async def _signed_in(request: Request) -> str | None:
    """Who is signed in to the console (the SLA board's session), if anyone."""
    check = getattr(request.app.state, "ops_session", None)
    session: OpsSession | None = await check(request) if check is not None else None
    return session.caller.name if session is not None else None


def _page(template: str, **context: Any) -> HTMLResponse:
    html = pages.get_template(template).render(
        rate=_rate, duration=duration, figure=_figure, **context
    )
    return HTMLResponse(html, headers=PAGE_HEADERS)


def _figure(value: float) -> str:
    """An input as people read it: 120,000 or 0.6667, never 1.2e+05."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def _rate(rated: RateView | None) -> str:
    if rated is None or rated.rate is None:
        return "–"
    if rated.small and rated.low is not None and rated.high is not None:
        return f"{rated.low:.0%}–{rated.high:.0%}"
    return f"{rated.rate:.1%}"


@router.get("/funnel")
async def funnel_page(
    request: Request,
    runtime: RuntimeDep,
    start: StartDay = None,
    end: EndDay = None,
    by: GroupBy = "source",
) -> Response:
    caller = await _signed_in(request)
    if caller is None:
        return RedirectResponse(SIGN_IN, 303)
    settings = analytics_config(runtime.settings).analytics
    first, last = period(settings, start, end)
    async with runtime.sessions() as session:
        view = await reports.funnel(session, settings, start=first, end=last, group_by=by)
    charts = {}
    if view.total is not None:
        charts["stages"] = bar_chart(
            "Leads at each stage, in order",
            [(s.stage, float(s.in_order)) for s in view.total.stages],
            percent=False,
        )
        charts["groups"] = bar_chart(
            f"MQL → SQL by {by}",
            [(str(g.group), g.stages[2].in_order_rate.rate if g.stages[2].in_order_rate else None)
             for g in view.groups],
            percent=True,
        )  # fmt: skip
    return _page(
        "console_funnel.html", view=view, charts=charts, groups=list(store.GROUPS),
        caller=caller, current="funnel",
    )  # fmt: skip


@router.get("/plan")
async def plan_page(request: Request, runtime: RuntimeDep, target: float | None = None) -> Response:
    caller = await _signed_in(request)
    if caller is None:
        return RedirectResponse(SIGN_IN, 303)
    settings = analytics_config(runtime.settings).analytics
    today = datetime.now(settings.definitions.time_zone).date()
    given = {"target": target} if target is not None and target > 0 else {}
    async with runtime.sessions() as session:
        try:
            plan = await reports.revenue_plan(session, settings, today=today, given=given)
        except Problem as problem:
            return _page("console_plan.html", problem=problem.detail, caller=caller, current="plan")
    charts = {
        "inquiries": bar_chart(
            "Inquiries needed, by month", [(n.month, float(n.inquiries)) for n in plan.needs],
            percent=False,
        ),
        "sources": bar_chart(
            "Inquiries needed over the plan, by source",
            [(s, float(n)) for s, n in plan.inquiries_by_source.items()],
            percent=False,
        ),
    }  # fmt: skip
    return _page(
        "console_plan.html", plan=plan, charts=charts, problem=None, caller=caller,
        current="plan",
    )  # fmt: skip


@router.get("/review")
async def review_page(request: Request, runtime: RuntimeDep, month: MonthQuery = None) -> Response:
    """The monthly review (default: last month's)."""
    caller = await _signed_in(request)
    if caller is None:
        return RedirectResponse(SIGN_IN, 303)
    settings = analytics_config(runtime.settings).analytics
    today = datetime.now(settings.definitions.time_zone).date()
    chosen = month or month_after(today.strftime("%Y-%m"), -1)
    review = await review_of(request, runtime, chosen)
    html = review_files.html(review, console={"caller": caller})
    return HTMLResponse(html, headers=PAGE_HEADERS)


@router.get("/review/{month}/archive")
async def review_archive(request: Request, runtime: RuntimeDep, month: MonthPath) -> Response:
    if await _signed_in(request) is None:
        return RedirectResponse(SIGN_IN, 303)
    review = await review_of(request, runtime, month)
    body = review_files.archive(review, review_files.html(review))
    headers = {"Content-Disposition": f'attachment; filename="review-{month}.zip"'}
    return Response(body, media_type="application/zip", headers=headers | PAGE_HEADERS)


@router.get("/analytics/console.css")
async def stylesheet() -> Response:
    headers = {"Cache-Control": "max-age=300", "X-Content-Type-Options": "nosniff"}
    return Response(review_files.CSS, media_type="text/css; charset=utf-8", headers=headers)
