"""The analytics service's HTTP bodies."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, Field

GroupBy = Literal[
    "source", "campaign", "medium", "ad_platform", "segment", "team", "owner", "expansion",
    "ruleset", "cohort_month", "cohort_day",
]  # fmt: skip


class RateView(BaseModel):
    converted: int
    base: int
    rate: float | None = Field(description="converted ÷ base (None without a base)")
    low: float | None = Field(description="95 % Wilson interval; None when no share (rate > 1)")
    high: float | None
    small: bool = Field(description="Fewer than 30 in the base: read the interval, not the rate")


class StageView(BaseModel):
    stage: Literal["inquiry", "mql", "sql", "opportunity", "booking"]
    reached: int = Field(description="Leads that reached the stage, by any path")
    in_order: int = Field(description="Leads that passed every stage before it, in order")
    reached_rate: RateView | None = Field(description="reached ÷ the stage before's reached")
    in_order_rate: RateView | None = Field(description="in_order ÷ the stage before's in_order")


class LagView(BaseModel):
    from_stage: str
    to_stage: str
    leads: int = Field(description="Leads that passed both stages in order")
    p50_s: float | None
    p90_s: float | None


class FunnelGroupView(BaseModel):
    group: Any = Field(description="The group's value (null: none, e.g. no campaign)")
    stages: list[StageView]
    lags: list[LagView]
    bookings: int
    bookings_amount: float
    average_booking: float | None = Field(description="Of the bookings with an amount")
    pipeline_amount: float = Field(description="The opportunities' amounts")


class FunnelView(BaseModel):
    start: date = Field(description="First cohort day counted")
    end: date = Field(description="Last cohort day counted")
    time_zone: str = Field(description="The reporting calendar's zone (LEADFLOW_ANALYTICS__…)")
    group_by: GroupBy | None
    filters: dict[str, Any]
    total: FunnelGroupView | None = Field(description="All the leads counted; null: none")
    groups: list[FunnelGroupView] = Field(description="One per value of group_by")


class ShareView(BaseModel):
    count: int
    amount: float = Field(description="Summed as reported, whatever the currency")


class SplitView(BaseModel):
    all: ShareView
    marketing: ShareView = Field(description="The lead was an MQL before its opportunity")
    sales: ShareView = Field(description="The rest: sourced by sales")
    expansion: ShareView = Field(description="Existing customers (routing's account match)")
    net_new: ShareView = Field(description="The rest, a lead never routed included")


class CreditView(BaseModel):
    group: Any = Field(description="The group's value (null: none, e.g. no campaign)")
    bookings: SplitView = Field(description="Booked (booked or won) in the period")
    pipeline: SplitView = Field(description="Opportunities opened in the period")


class AttributionView(BaseModel):
    start: date = Field(description="First day counted (reporting time zone)")
    end: date = Field(description="Last day counted")
    time_zone: str
    group_by: GroupBy
    filters: dict[str, Any]
    total: CreditView
    groups: list[CreditView]


class ProgressLine(BaseModel):
    metric: str = Field(description="mqls, mql_to_sql, opportunities, bookings, bookings_amount")
    goal: float | None = Field(description="null: no goal set for it")
    actual: float
    gap: float | None = Field(description="actual − goal (negative: short of it)")
    forecast: float | None = Field(
        description="The month under way: a count at the run rate so far (null otherwise)"
    )


class RevenueProgress(BaseModel):
    goal: float | None = Field(description="The month's twelfth of the NTM revenue target")
    expansion_goal: float | None = Field(description="Its expected expansion share")
    net_new_goal: float | None
    expansion: float = Field(description="Booked from existing customers")
    net_new: float


class MarketingProgress(BaseModel):
    bookings: int = Field(description="Bookings from marketing's MQLs (they own them)")
    amount: float


class MonthProgress(BaseModel):
    month: str = Field(description="YYYY-MM, reporting time zone")
    shared: list[ProgressLine] = Field(description="The goals both teams own")
    revenue: RevenueProgress
    marketing: MarketingProgress
    teams: dict[str, list[ProgressLine]] = Field(description="Per team with goals or activity")
    owners: dict[str, list[ProgressLine]] = Field(description="Per owner (email), likewise")


class GoalsProgressView(BaseModel):
    version: int | None = Field(description="The goals version measured against (null: none)")
    name: str | None
    time_zone: str
    months: list[MonthProgress]


Origin = Literal["given", "goals", "measured"]


class PlanInput(BaseModel):
    value: float
    origin: Origin = Field(
        description="given (this request), goals (the live version) or measured (the funnel "
        "of the last 365 days of cohorts)"
    )


class MonthNeedView(BaseModel):
    month: str
    bookings: int = Field(description="Net-new bookings to close this month")
    opportunities: int = Field(description="To open this month, for later bookings")
    sqls: int
    mqls: int
    inquiries: int
    expected_bookings: float = Field(description="From the pipeline open now")


class PlanView(BaseModel):
    months: list[str] = Field(description="The months the revenue is booked in")
    inputs: dict[str, PlanInput] = Field(
        description="target, expansion_share, deal_size, each step's rate and lag (days)"
    )
    revenue: float
    expansion_revenue: float = Field(description="From existing customers")
    net_new_revenue: float = Field(description="Worked backwards through the funnel")
    bookings: int = Field(description="Net-new bookings over the plan")
    needs: list[MonthNeedView] = Field(
        description="Month by month, from the first that needs anything (counts rounded up)"
    )
    late_inquiries: int = Field(description="Needed before the plan's first month: late already")
    inquiries_by_source: dict[str, int] = Field(
        description="By the source's share of the bookings and its own inquiry → booking yield"
    )
    open_opportunities: int
    open_sqls: int
    short_from: str | None = Field(
        description="The first month the pipeline open now falls short (null: it covers it)"
    )


class ReasonsView(BaseModel):
    group: Any = Field(description="The group's value (a rule id with by=rule; null: none)")
    total: int
    reasons: dict[str, dict[str, int]] = Field(
        description="Kind (rejected, lost, recycled, disqualified) → reason code → count"
    )


class RuleRejectionView(BaseModel):
    rule: str
    qualified: int = Field(description="Leads it helped make MQLs in the period")
    rejected: int = Field(description="Of those, the ones sales rejected since")
    rejection_rate: float


class FeedbackView(BaseModel):
    start: date
    end: date
    time_zone: str
    group_by: str
    groups: list[ReasonsView]
    rules: list[RuleRejectionView] = Field(
        description="The rules that qualified the period's MQLs, the most rejected first"
    )
    backtest: str = Field(
        description="Where to backtest a proposed ruleset version against past leads (POST; "
        "put the version in place of {version})"
    )
