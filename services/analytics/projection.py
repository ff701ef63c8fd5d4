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
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
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
    booking_amount: float | None
    currency: str | None
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
    ordered = sorted(facts, key=_when)
    received = [f for f in ordered if f.kind == "received"]
    if not received:
        return None
    first = received[0]
    local = first.occurred_at.astimezone(definitions.time_zone)
    origin = first.detail
    mqls = [f for f in ordered if f.kind == "mql"]
    routings = [f for f in ordered if f.kind == "routed"]
    routing = routings[-1].detail if routings else {}
    opportunity, booking = _outcomes(ordered, {"opportunity"}), _outcomes(ordered, BOOKINGS)
    owner = routing.get("owner_id")
    mql_at = mqls[0].occurred_at if mqls else None
    credited_at = (opportunity or booking)[0].occurred_at if opportunity or booking else None
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
        team=routing.get("team"),
        owner_id=UUID(owner) if owner else None,
        owner_email=routing.get("owner_email"),
        is_expansion=routing.get("is_expansion"),
        ruleset=mqls[0].detail.get("ruleset") if mqls else None,
        is_test=bool(origin.get("is_test")),
        mql_at=mql_at,
        sql_at=next((f.occurred_at for f in ordered if f.kind == "sql"), None),
        opportunity_at=opportunity[0].occurred_at if opportunity else None,
        booked_at=booking[0].occurred_at if booking else None,
        lost_at=next((f.occurred_at for f in _outcomes(ordered, {"lost"})), None),
        dropped_at=max(
            (f.occurred_at for f in ordered if f.kind in ("recycled", "disqualified")), default=None
        ),
        opportunity_amount=_latest_amount(opportunity),
        booking_amount=_latest_amount(booking),
        currency=_currency(booking or opportunity),
        sourced_by=sourced_by(mql_at, credited_at),
    )


def sourced_by(mql_at: datetime | None, won_at: datetime | None) -> str | None:
    """Who a lead's opportunity (or booking: ``won_at``, whichever came first) is credited to:
    marketing when the lead was an MQL no later, else sales; None without either."""
    if won_at is None:
        return None
    return "marketing" if mql_at is not None and mql_at <= won_at else "sales"


def _when(fact: Fact) -> tuple[datetime, str]:
    return fact.occurred_at, str(fact.event_id)


def _outcomes(facts: Sequence[Fact], kinds: Collection[Any]) -> list[Fact]:
    return [f for f in facts if f.kind == "outcome" and f.detail.get("outcome") in kinds]


def _latest_amount(facts: Sequence[Fact]) -> float | None:
    amounts = [f.detail["amount"] for f in facts if f.detail.get("amount") is not None]
    return float(amounts[-1]) if amounts else None


def _currency(facts: Sequence[Fact]) -> str | None:
    found = [f.detail["currency"] for f in facts if f.detail.get("currency")]
    return str(found[-1]) if found else None
