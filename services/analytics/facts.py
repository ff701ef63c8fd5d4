"""What the analytics consumer keeps of each event: a fact (projection.Fact) with only what the
funnel and its later reports read. Pure; the origin of an inquiry (source, campaign, medium, ad
platform, company size) comes from intake, looked up as its ``lead.received`` is applied."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from services.analytics.projection import Fact
from shared.events import (
    CloudEvent,
    LeadDisqualified,
    LeadMql,
    LeadOutcome,
    LeadQueued,
    LeadReassigned,
    LeadReceived,
    LeadRecycled,
    LeadRouted,
    LeadSql,
)

APPLIED = (
    LeadReceived, LeadMql, LeadSql, LeadOutcome, LeadRouted, LeadQueued, LeadReassigned,
    LeadRecycled, LeadDisqualified,
)  # fmt: skip
"""The events the funnel reads; any other is passed over."""


def fact_of(event: CloudEvent, origins: Mapping[UUID, Mapping[str, Any]]) -> Fact | None:
    """The event's fact; ``origins``: the origin of each inquiry of the batch's ``lead.received``
    (an inquiry not found, e.g. erased since, counts by the event's source alone)."""
    if not isinstance(event, APPLIED):
        return None
    data = event.data
    kind, at, detail = event.type.removeprefix("lead."), event.time, dict[str, Any]()
    if isinstance(event, LeadReceived):
        found = origins.get(event.data.inquiry_id) or {}
        detail = {**found, "source": event.data.source, "is_test": event.data.is_test}
    elif isinstance(event, LeadMql | LeadSql | LeadRecycled | LeadDisqualified):
        data = event.data
        at = data.caused_at or event.time
        detail = {
            "ruleset": event.ruleset, "cause": data.cause, "outcome": data.outcome,
            "reason": data.reason, "rules": list(data.rules),
        }  # fmt: skip
    elif isinstance(event, LeadOutcome):
        at = event.data.occurred_at
        detail = {
            "outcome": event.data.outcome,
            "amount": event.data.amount,
            "currency": event.data.currency,
            "reason": event.data.reason,
            "is_test": event.data.is_test,
        }
    elif isinstance(event, LeadRouted | LeadQueued | LeadReassigned):
        kind = "routed"
        owner = getattr(event.data, "owner_id", None)
        detail = {
            "owner_id": str(owner) if owner else None,
            "owner_email": getattr(event.data, "owner_email", None),
            "team": event.data.team,
            "is_expansion": event.data.is_expansion,
        }
    return Fact(event.id, data.lead_id, kind, at, detail)
