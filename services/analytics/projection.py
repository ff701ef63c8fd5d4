"""A lead's line in the funnel, folded from the facts the analytics consumer kept of its events.
Pure.

The fold sorts the facts by when they happened, so events applied in any order (the intake and
lifecycle topics are not ordered with each other; a CRM reports late) give the same line, and
the first time a lead reached a stage is what counts. A lead's cohort is the day and month its
first inquiry arrived, in the reporting time zone; its source, campaign, medium, ad platform and
segment are that first inquiry's (the original source). Its team and owner are the latest
routing's; its ruleset the version that first made it an MQL. Without an inquiry yet (its
``lead.received`` not applied) a lead has no line.

A booking or an opportunity is credited to marketing when the lead was an MQL before it (before
its opportunity, or before its booking when it had none), else to sales: ``sourced_by``.

A booking is a ``booked`` or ``won`` outcome: the first one dates it, the latest one with an
amount gives the amount (a CRM that reports ``booked`` and then ``won`` for one deal is not
counted twice). The same holds for an opportunity.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal, overload
from uuid import UUID
from zoneinfo import ZoneInfo

BOOKINGS = frozenset({"booked", "won"})


@dataclass(frozen=True, slots=True)
class Fact:
    """What the analytics consumer keeps of one event (models.AnalyticsFact)."""

    event_id: UUID
    lead_id: UUID
    kind: str
    """received, mql, sql, outcome, routed, recycled or disqualified."""
    occurred_at: datetime
    detail: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Definitions:
    """What a line's derived dimensions mean; a change needs a rebuild to reach old lines."""

    time_zone: ZoneInfo
    segments: tuple[tuple[int, str], ...]
    """(lowest employee count, name), ascending."""


@dataclass(frozen=True, slots=True)
class LeadLine:
    lead_id: UUID
    cohort_at: datetime
    cohort_day: str
    cohort_month: str
    source: str
    campaign: str | None
    medium: str | None
    ad_platform: str | None
    segment: str | None
    team: str | None
    owner_id: UUID | None
    owner_email: str | None
    is_expansion: bool | None
    routed_at: datetime | None
    """When the routing the line shows was made."""
    ruleset: str | None
    is_test: bool
    mql_at: datetime | None
    sql_at: datetime | None
    opportunity_at: datetime | None
    booked_at: datetime | None
    lost_at: datetime | None
    dropped_at: datetime | None
    """The latest recycling or disqualification (a lead may qualify again after it)."""
    opportunity_amount: float | None
    opportunity_amount_at: datetime | None
    """When the amount shown was reported (the latest with one)."""
    booking_amount: float | None
    booking_amount_at: datetime | None
    currency: str | None
    """The currency reported with the booking's amount, else with the opportunity's."""
    sourced_by: str | None
    """marketing or sales, for a lead with an opportunity or a booking; None without."""


def segment_of(employees: Any, segments: Sequence[tuple[int, str]]) -> str | None:
    """The segment of a company size as a form gives it (250, "250", "51-200": its lower end)."""
    if isinstance(employees, bool):
        return None
    if isinstance(employees, int | float):
        size = int(employees)
    else:
        found = re.match(r"\s*(\d+)", str(employees or ""))
        if found is None:
            return None
        size = int(found.group(1))
    named = [name for lowest, name in segments if size >= lowest]
    return named[-1] if named else None


def fold(facts: Iterable[Fact], definitions: Definitions) -> LeadLine | None:
    """The lead's line from all its facts."""
    ordered = sorted(facts, key=_when)
    first = next((f for f in ordered if f.kind == "received"), None)
    if first is None:
        return None
    line = _started(first, definitions)
    for fact in ordered:
        if fact is not first:
            line = _applied(line, fact, definitions, ties="by order")
    return line


def merge(line: LeadLine, facts: Iterable[Fact], definitions: Definitions) -> LeadLine | None:
    """``line`` with more of the lead's facts applied: what ``fold`` of all of them would give,
    without reading the earlier ones. None when the line cannot tell: a fact at the very time of
    the one the line took a value from (``fold`` orders those by event id, which the line does
    not keep): fold them all then."""
    found: LeadLine | None = line
    for fact in sorted(facts, key=_when):
        found = _applied(found, fact, definitions, ties="unknown") if found else None
    return found


Ties = Literal["by order", "unknown"]


def _started(first: Fact, definitions: Definitions) -> LeadLine:
    """A line from the lead's first inquiry, nothing else yet."""
    local = first.occurred_at.astimezone(definitions.time_zone)
    origin = first.detail
    return LeadLine(
        lead_id=first.lead_id,
        cohort_at=first.occurred_at,
        cohort_day=local.date().isoformat(),
        cohort_month=local.strftime("%Y-%m"),
        source=str(origin.get("source") or "unknown"),
        campaign=origin.get("campaign"),
        medium=origin.get("medium"),
        ad_platform=origin.get("ad_platform"),
        segment=segment_of(origin.get("employees"), definitions.segments),
        team=None, owner_id=None, owner_email=None, is_expansion=None, routed_at=None,
        ruleset=None, is_test=bool(origin.get("is_test")),
        mql_at=None, sql_at=None, opportunity_at=None, booked_at=None, lost_at=None,
        dropped_at=None, opportunity_amount=None, opportunity_amount_at=None,
        booking_amount=None, booking_amount_at=None, currency=None, sourced_by=None,
    )  # fmt: skip


@overload
def _applied(
    line: LeadLine, fact: Fact, definitions: Definitions, *, ties: Literal["by order"]
) -> LeadLine: ...
@overload
def _applied(
    line: LeadLine, fact: Fact, definitions: Definitions, *, ties: Literal["unknown"]
) -> LeadLine | None: ...
def _applied(
    line: LeadLine, fact: Fact, definitions: Definitions, *, ties: Ties
) -> LeadLine | None:
    """``line`` with ``fact`` applied; on a tie with the value's own fact (same time), ``by
    order``: ``fact`` comes after it (``fold`` applies facts in order), ``unknown``: None."""
    at, detail = fact.occurred_at, fact.detail
    change: dict[str, Any] = {}

    def earliest(current: datetime | None) -> bool | None:
        """Whether ``fact`` is the new earliest (None: cannot tell)."""
        if current is None or at < current:
            return True
        return None if at == current and ties == "unknown" else False

    def latest(current: datetime | None) -> bool | None:
        if current is None or at > current:
            return True
        if at == current:
            return True if ties == "by order" else None
        return False

    if fact.kind == "received":
        first = earliest(line.cohort_at)
        if first is None:
            return None
        if first:
            started = _started(fact, definitions)
            change = {k: getattr(started, k) for k in ORIGIN}
    elif fact.kind == "mql":
        first = earliest(line.mql_at)
        if first is None:
            return None
        if first:
            change = {"mql_at": at, "ruleset": detail.get("ruleset")}
    elif fact.kind == "sql":
        change = {"sql_at": min(at, line.sql_at or at)}
    elif fact.kind == "routed":
        newest = latest(line.routed_at)
        if newest is None:
            return None
        if newest:
            owner = detail.get("owner_id")
            change = {
                "team": detail.get("team"), "owner_id": UUID(owner) if owner else None,
                "owner_email": detail.get("owner_email"),
                "is_expansion": detail.get("is_expansion"), "routed_at": at,
            }  # fmt: skip
    elif fact.kind in ("recycled", "disqualified"):
        change = {"dropped_at": max(at, line.dropped_at or at)}
    elif fact.kind == "outcome":
        outcome = detail.get("outcome")
        if outcome == "lost":
            change = {"lost_at": min(at, line.lost_at or at)}
        elif outcome in BOOKINGS or outcome == "opportunity":
            kind = "booking" if outcome in BOOKINGS else "opportunity"
            reached = "booked_at" if kind == "booking" else "opportunity_at"
            change = {reached: min(at, getattr(line, reached) or at)}
            if detail.get("amount") is not None:
                newest = latest(getattr(line, f"{kind}_amount_at"))
                if newest is None:
                    return None
                if newest:
                    change |= {f"{kind}_amount": float(detail["amount"]), f"{kind}_amount_at": at}
                    if kind == "booking" or line.booking_amount is None:
                        change["currency"] = detail.get("currency")
    if not change:
        return line
    mql_at = change.get("mql_at", line.mql_at)
    credited = change.get("opportunity_at", line.opportunity_at) or change.get(
        "booked_at", line.booked_at
    )
    return replace(line, **change, sourced_by=sourced_by(mql_at, credited))


ORIGIN = (
    "cohort_at", "cohort_day", "cohort_month", "source", "campaign", "medium", "ad_platform",
    "segment", "is_test",
)  # fmt: skip
"""What a line takes from the lead's first inquiry."""


def sourced_by(mql_at: datetime | None, won_at: datetime | None) -> str | None:
    """Who a lead's opportunity (or booking: ``won_at``, whichever came first) is credited to:
    marketing when the lead was an MQL no later, else sales; None without either."""
    if won_at is None:
        return None
    return "marketing" if mql_at is not None and mql_at <= won_at else "sales"


def _when(fact: Fact) -> tuple[datetime, str]:
    return fact.occurred_at, str(fact.event_id)
