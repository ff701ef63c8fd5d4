"""The fairness ledger of a pool: weighted round robin that stays fair across restarts and
roster changes. Pure; ``store`` keeps it (``routing_pools``, ``routing_ledger``).

How a lead is picked. The pool keeps a *window*: the roster (eligible reps with their weights)
it was opened for and the leads routed since. Within a window, rep i of weight w_i (W = the sum)
has its j-th lead due by slot ceil(j·W/w_i) and not before slot floor((j-1)·W/w_i); the earliest
due among those not early wins (earliest-deadline-first over Pfair windows). That schedule gives
every rep, after n leads of the window, between floor(n·w_i/W) and ceil(n·w_i/W) leads: never
more than one lead from its weighted share, at every point, whatever the weights.

Roster changes. When the eligible set or a weight changes (someone goes on leave, comes back,
is added, deactivated, reaches capacity), the window closes and a new one opens for the new
roster. Nobody is reset: each rep's *credited* share (the leads it was entitled to, summed over
windows) and its *assigned* count carry over; their difference, the balance, decides who goes
first among reps equally due when the new window opens, so a change never sends the next lead
"back to the top of the list". A balance is held within one lead either way.

Returning from leave (the policy). Time away earns nothing: a rep not in the roster is credited
no share, so there is nothing to catch up on, and on return a positive balance is cut to zero.
A returning rep therefore gets exactly its weighted share from the moment it is back — no
flood, and no penalty either.

Ties (equal deadlines and equal balances) go to the smaller rep id: deterministic on every
replica and after every restart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from uuid import UUID

Roster = tuple[tuple[UUID, int], ...]
"""Eligible reps with their weights, sorted by rep id."""
MAX_BALANCE = 1.0


@dataclass(frozen=True, slots=True)
class Standing:
    credited: float = 0.0
    """Share credited up to the start of the current window."""
    assigned: int = 0
    window_count: int = 0


NOBODY = Standing()
"""The standing of a rep the pool has no record of."""


@dataclass(frozen=True)
class PoolLedger:
    roster: Roster = ()
    position: int = 0
    routed: int = 0
    standings: dict[UUID, Standing] = field(default_factory=dict)

    def standing(self, rep: UUID) -> Standing:
        return self.standings.get(rep, NOBODY)

    def credited(self, rep: UUID) -> float:
        """Share credited so far, including the current window's."""
        weights = dict(self.roster)
        total = sum(weights.values())
        extra = self.position * weights[rep] / total if rep in weights and total else 0.0
        return self.standing(rep).credited + extra

    def balance(self, rep: UUID) -> float:
        """Leads owed to the rep (positive) or given ahead of its share (negative)."""
        return self.credited(rep) - self.standing(rep).assigned


def make_roster(weights: Sequence[tuple[UUID, int]]) -> Roster:
    # Sorted by the ids' integers: the order of the UUIDs, without a Python call per comparison.
    return tuple(sorted(((rep, max(int(w), 1)) for rep, w in weights), key=_by_rep))


def _by_rep(entry: tuple[UUID, int]) -> tuple[int, int]:
    return entry[0].int, entry[1]


def open_window(ledger: PoolLedger, roster: Roster) -> PoolLedger:
    """Close the current window and open one for ``roster`` (a no-op when it is the same)."""
    if roster == ledger.roster:
        return ledger
    old = dict(ledger.roster)
    old_total = sum(old.values())
    standings = dict(ledger.standings)
    for rep, weight in old.items():
        s = ledger.standing(rep)
        credited = s.credited + (ledger.position * weight / old_total if old_total else 0.0)
        standings[rep] = replace(s, credited=_held(credited, s.assigned), window_count=0)
    for rep, _ in roster:
        if rep not in old:  # new, or back from leave: nothing owed (see the policy above)
            s = ledger.standing(rep)
            credited = min(s.credited, float(s.assigned))
            standings[rep] = replace(s, credited=_held(credited, s.assigned), window_count=0)
    return PoolLedger(roster, 0, ledger.routed, standings)


def _held(credited: float, assigned: int) -> float:
    return min(max(credited, assigned - MAX_BALANCE), assigned + MAX_BALANCE)


def pick(ledger: PoolLedger) -> UUID:
    """The next rep of the ledger's (already opened) window."""
    if not ledger.roster:
        raise ValueError("empty roster")
    total = sum(w for _, w in ledger.roster)
    slot = ledger.position
    best: tuple[int, float, UUID] | None = None
    fallback: tuple[int, float, UUID] | None = None
    for rep, weight in ledger.roster:
        s = ledger.standings.get(rep, NOBODY)
        count = s.window_count
        release = (count * total) // weight
        deadline = -((-(count + 1) * total) // weight)
        balance = s.credited + slot * weight / total - s.assigned
        key = (deadline, -round(balance, 9), rep)
        if release <= slot and (best is None or key < best):
            best = key
        if fallback is None or key < fallback:
            fallback = key
    chosen = best or fallback
    assert chosen is not None
    return chosen[2]


def record(ledger: PoolLedger, rep: UUID) -> PoolLedger:
    """Count a lead given to ``rep`` in the current window."""
    s = ledger.standing(rep)
    in_window = rep in (member for member, _ in ledger.roster)
    standings = dict(ledger.standings)
    standings[rep] = Standing(s.credited, s.assigned + 1, s.window_count + (1 if in_window else 0))
    position = ledger.position + (1 if in_window else 0)
    return PoolLedger(ledger.roster, position, ledger.routed + 1, standings)
