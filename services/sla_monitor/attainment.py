"""Time to first response and SLA attainment, by any grouping of clocks. Pure.

A clock counts once it is decided: met (in time or late) or breached. Attainment is the share
met in time; the percentiles are of the owner's working time to the response (met clocks only)
and, beside it, of Leadflow's own delay before the owner's clock started (system time), so a
slow pipeline is never blamed on a rep, and a slow rep never on the pipeline.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Outcome:
    """A decided clock, as attainment needs it."""

    group: str
    met_in_time: bool
    working_time_s: float | None
    """Owner time to the response (None: no response yet, the clock breached)."""
    system_time_s: float | None


@dataclass(frozen=True, slots=True)
class Attainment:
    group: str
    clocks: int
    met_in_time: int
    attainment_pct: float
    owner_p50_s: float | None
    owner_p90_s: float | None
    system_p50_s: float | None
    system_p90_s: float | None


def met_in_time(state: str, closed_at: datetime | None, deadline: datetime) -> bool:
    """A clock met by its deadline (a breached one, met late or not at all, is not)."""
    return state == "met" and closed_at is not None and closed_at <= deadline


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile (``share`` in 0…1) of ``values``; None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(share * len(ordered)), 1)
    return ordered[rank - 1]


def attainment(outcomes: Iterable[Outcome]) -> list[Attainment]:
    """One line per group, in group order."""
    groups: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in outcomes:
        groups[outcome.group].append(outcome)
    return [_line(name, found) for name, found in sorted(groups.items())]


def _line(group: str, found: list[Outcome]) -> Attainment:
    owner = [o.working_time_s for o in found if o.working_time_s is not None]
    system = [o.system_time_s for o in found if o.system_time_s is not None]
    in_time = sum(1 for o in found if o.met_in_time)
    return Attainment(
        group=group,
        clocks=len(found),
        met_in_time=in_time,
        attainment_pct=round(100 * in_time / len(found), 1),
        owner_p50_s=percentile(owner, 0.5),
        owner_p90_s=percentile(owner, 0.9),
        system_p50_s=percentile(system, 0.5),
        system_p90_s=percentile(system, 0.9),
    )


def time_left(deadline: datetime, now: datetime) -> float:
    """Seconds until the deadline (negative once it passed)."""
    return (deadline - now).total_seconds()
