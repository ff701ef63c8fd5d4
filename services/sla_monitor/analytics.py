"""The SLA monitor's part of the monthly source review (services/analytics): first-response
attainment by the leads' source over a period, as the attainment API works it out
(attainment.py). Reads only."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.sla_monitor import store
from services.sla_monitor.attainment import Attainment, Outcome, attainment, met_in_time


async def attainment_by_source(
    session: AsyncSession, since: datetime, until: datetime, /
) -> dict[str, Attainment]:
    """Per source, the first-response clocks decided in the period: how many, met in time, and
    the owners' p50/p90 working time to the response."""
    rows = await store.decided_between(session, since, until, kind="first_response")
    outcomes = [
        Outcome(
            group=row.source or "(none)",
            met_in_time=met_in_time(row.state, row.closed_at, row.deadline),
            working_time_s=row.working_time_s,
            system_time_s=row.system_time_s,
        )  # fmt: skip
        for row in rows
    ]
    return {line.group: line for line in attainment(outcomes)}
