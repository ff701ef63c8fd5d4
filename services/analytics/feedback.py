"""Sales' feedback on the leads marketing qualified: rejection, loss, recycle and
disqualification reasons counted by group (source, campaign, ruleset, owner, team… or each rule
that qualified the lead), and the rules that most often qualify leads sales rejects: the input of
the monthly meeting that re-calibrates the rules. Pure.

A lead counts as rejected by sales when a ``rejected`` outcome came after it became an MQL
(whether the rejection recycled it or, a wrong-owner one, moved it to another owner).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

KINDS = ("rejected", "lost", "recycled", "disqualified")
NO_REASON = "(none)"


@dataclass(frozen=True, slots=True)
class Said:
    """One piece of feedback: its kind, its reason, and the groups its lead counts in."""

    groups: Sequence[Any]
    kind: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class Qualified:
    """A lead that became an MQL: the rules that made it one, and whether sales rejected it."""

    rules: Sequence[str]
    ruleset: str | None
    rejected: bool


@dataclass(frozen=True, slots=True)
class ReasonCounts:
    group: Any
    total: int
    reasons: dict[str, dict[str, int]]
    """Kind → reason → count."""


@dataclass(frozen=True, slots=True)
class RuleLine:
    rule: str
    qualified: int
    rejected: int
    rejection_rate: float


def reasons(said: Iterable[Said]) -> list[ReasonCounts]:
    """Counts per group and kind of feedback, the group without a value last."""
    counts: dict[Any, dict[str, Counter[str]]] = defaultdict(lambda: defaultdict(Counter))
    for item in said:
        for group in item.groups:
            counts[group][item.kind][item.reason or NO_REASON] += 1
    return [
        ReasonCounts(
            group=group,
            total=sum(sum(c.values()) for c in kinds.values()),
            reasons={kind: dict(kinds[kind].most_common()) for kind in KINDS if kind in kinds},
        )
        for group, kinds in sorted(counts.items(), key=lambda g: (g[0] is None, str(g[0])))
    ]


def rules_rejected(leads: Iterable[Qualified], *, least: int = 1) -> list[RuleLine]:
    """Each rule that qualified leads: how many, how many of them sales rejected, and the
    share; the most rejected first (by count, then rate). Rules that qualified fewer than
    ``least`` leads are left out."""
    qualified: Counter[str] = Counter()
    rejected: Counter[str] = Counter()
    for lead in leads:
        for rule in set(lead.rules):
            qualified[rule] += 1
            rejected[rule] += lead.rejected
    lines = [
        RuleLine(rule, qualified[rule], rejected[rule], rejected[rule] / qualified[rule])
        for rule in qualified
        if qualified[rule] >= least
    ]
    return sorted(lines, key=lambda r: (-r.rejected, -r.rejection_rate, r.rule))
