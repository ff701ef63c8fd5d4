"""The routing decision: which owner (or which queue) a lead goes to, and why. Pure.

Order: the account owner when the lead's company is a customer (expansion); else the first
routing rule whose condition holds picks a team; else the default queue. Within the team, each
member is checked in a fixed order of skip reasons — deactivated, away, excluded (had this lead
before: no loops), not matching the rule's filters, outside working hours (per the team's
``outside_hours``: skip, or hold the lead for them), at capacity — and the strategy picks among
the rest. When nobody is left, the lead waits in the team's queue: a decision, never a silence.

``needs`` says, before deciding, which pool's ledger and which reps' loads a decision may read or
change: the routing transaction locks exactly those (services/routing/txn.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from services.routing import ledger as fair
from services.routing.accounts import AccountMatch
from services.routing.directory import (
    Directory,
    RepInfo,
    RepLoad,
    TeamInfo,
    territory_matches,
)
from services.routing.facts import account_domain
from services.routing.rules import RouteRule

Outcome = Literal["routed", "queued"]
NO_LOAD = RepLoad()
NO_LEDGER = fair.PoolLedger()


@dataclass(frozen=True, slots=True)
class Candidate:
    rep_id: UUID
    name: str
    status: Literal["chosen", "eligible", "skipped"]
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        shown = {"rep_id": str(self.rep_id), "name": self.name, "status": self.status}
        if self.reason:
            shown["reason"] = self.reason
        return shown


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    rule: str
    reason: str
    owner_id: UUID | None = None
    team: TeamInfo | None = None
    strategy: str | None = None
    is_expansion: bool = False
    account_id: UUID | None = None
    available_at: datetime | None = None
    """Held: the owner's working hours start then (the team holds rather than skips)."""
    candidates: tuple[Candidate, ...] = ()
    ledger: fair.PoolLedger | None = None
    """The pool's ledger after this lead (round robin), to store."""


@dataclass(frozen=True)
class Situation:
    """Everything the router needs besides the directory, read inside the routing transaction."""

    facts: Mapping[str, Any]
    now: datetime
    loads: Mapping[UUID, RepLoad] = field(default_factory=dict)
    ledgers: Mapping[UUID, fair.PoolLedger] = field(default_factory=dict)
    exclude: frozenset[UUID] = frozenset()
    reassignments: int = 0
    target: tuple[str, TeamInfo | None, RouteRule | None] | None = None
    """``target(directory, facts)`` when the caller has it already (it evaluates the rules)."""
    account: AccountMatch | None = None
    matched: bool = False
    """True: ``account`` is ``match_account(directory, facts)`` already (None: no customer)."""


@dataclass(frozen=True, slots=True)
class Needs:
    """What deciding about one lead may read or change besides the directory: the pool whose
    fairness ledger it moves, and the reps whose loads it reads or raises (a rep's capacity is
    shared by every pool the rep is in; an account owner is given leads outside any pool)."""

    pools: frozenset[UUID] = frozenset()
    reps: frozenset[UUID] = frozenset()

    def union(self, others: Iterable[Needs]) -> Needs:
        pools, reps = set(self.pools), set(self.reps)
        for other in others:
            pools |= other.pools
            reps |= other.reps
        return Needs(frozenset(pools), frozenset(reps))


Target = tuple[str, TeamInfo | None, RouteRule | None]
"""The rule that applies (or ``default_queue``), its team (None: no such team), the rule."""


def target(directory: Directory, facts: Mapping[str, Any]) -> Target:
    """Which rule applies and its team (None: the team named does not exist)."""
    rule = directory.routing.first_match(dict(facts))
    if rule is not None:
        return rule.id, directory.teams_by_name.get(rule.team), rule
    default = directory.routing.spec.default_queue
    return "default_queue", directory.teams_by_name.get(default), None


def match_account(directory: Directory, facts: Mapping[str, Any]) -> AccountMatch | None:
    """The customer account the lead's company is, if account matching is on."""
    spec = directory.routing.spec.account_match
    if not spec.enabled:
        return None
    return directory.accounts.match(
        account_domain(facts), str(facts["company"]), min_similarity=spec.min_similarity
    )


def needs(directory: Directory, situation: Situation) -> Needs:
    """The pool and the reps ``route(directory, situation)`` may read the ledger or loads of,
    whatever the loads and ledgers turn out to be: the available account owner (then nothing
    else), else the target team's pool and its members not skipped for a reason that does not
    depend on load (deactivated, away, excluded, rule filters, outside hours)."""
    match = situation.account if situation.matched else match_account(directory, situation.facts)
    if match is not None and match.account.owner_id in directory.reps:
        owner = directory.reps[match.account.owner_id]
        if _unavailable(owner, situation.now, situation.exclude) is None:
            return Needs(reps=frozenset({owner.id}))
    if situation.reassignments > directory.routing.spec.reassignment.max_per_lead:
        return Needs()
    _, team, rule = situation.target or target(directory, situation.facts)
    if team is None:
        return Needs()
    reps = frozenset(
        rep.id
        for rep in _members(directory, team)
        if _skip_before_load(rep, team, rule, situation) is None
    )
    return Needs(frozenset({team.id}), reps) if reps else Needs()


def route(directory: Directory, situation: Situation) -> Decision:
    facts, now = situation.facts, situation.now
    spec = directory.routing.spec
    notes: list[Candidate] = []
    match = situation.account if situation.matched else match_account(directory, facts)
    expansion = match is not None
    account_id = match.account.id if match else None
    if match is not None and match.account.owner_id in directory.reps:
        owner = directory.reps[match.account.owner_id]
        why = _unavailable(owner, now, situation.exclude)
        if why is None:
            return Decision(
                "routed",
                "account_match",
                f"{match.account.name} is a customer (matched by {match.by}, {match.score:.0f}): "
                "its account owner",
                owner.id,
                is_expansion=True,
                account_id=account_id,
                available_at=_held_until(owner, now),
                candidates=(Candidate(owner.id, owner.name, "chosen", "account_owner"),),
            )
        notes.append(Candidate(owner.id, owner.name, "skipped", f"account_owner_{why}"))
    if situation.reassignments > spec.reassignment.max_per_lead:
        team = directory.teams_by_name.get(spec.default_queue)
        return _queued(
            "reassignment_limit",
            f"reassigned {situation.reassignments} times (limit {spec.reassignment.max_per_lead}):"
            " waits for a manager",
            team,
            expansion,
            account_id,
            tuple(notes),
        )
    rule_id, team, rule = situation.target or target(directory, facts)
    if team is None:
        name = rule.team if rule is not None else spec.default_queue
        return _queued(rule_id, f"team {name!r} does not exist", None, expansion, account_id, ())
    decision = _within_team(directory, situation, team, rule)
    return Decision(
        decision.outcome,
        rule_id,
        decision.reason,
        decision.owner_id,
        team,
        decision.strategy,
        expansion,
        account_id,
        decision.available_at,
        (*notes, *decision.candidates),
        decision.ledger,
    )


def _within_team(
    directory: Directory, situation: Situation, team: TeamInfo, rule: RouteRule | None
) -> Decision:
    strategy = (rule.strategy if rule is not None else None) or team.strategy
    members = _members(directory, team)
    skipped: list[Candidate | None] = []  # None: eligible, in rep id order as the members
    eligible: list[RepInfo] = []
    for rep in members:
        why = _skip_reason(rep, team, rule, situation)
        if why is None:
            eligible.append(rep)
            skipped.append(None)
        else:
            skipped.append(Candidate(rep.id, rep.name, "skipped", why))
    if not eligible:
        reason = "nobody eligible in " + team.name
        nobody = tuple(note for note in skipped if note is not None)
        return _queued("", reason, team, False, None, nobody)
    chosen, pool = _choose(strategy, eligible, team, situation)
    # The chosen first, then everyone else in rep id order.
    candidates = [Candidate(rep.id, rep.name, "chosen") for rep in eligible if rep.id == chosen.id]
    for rep, note in zip(members, skipped, strict=True):
        if note is not None:
            candidates.append(note)
        elif rep.id != chosen.id:
            candidates.append(Candidate(rep.id, rep.name, "eligible"))
    return Decision(
        "routed",
        "",
        f"{strategy.replace('_', ' ')} in {team.name}",
        chosen.id,
        team,
        strategy,
        available_at=_held_until(chosen, situation.now),
        candidates=tuple(candidates),
        ledger=pool,
    )


def _members(directory: Directory, team: TeamInfo) -> tuple[RepInfo, ...]:
    members = directory.members.get(team.id)
    if members is None:
        members = tuple(directory.reps[r] for r in sorted(team.members) if r in directory.reps)
    return members


def _choose(
    strategy: str, eligible: list[RepInfo], team: TeamInfo, situation: Situation
) -> tuple[RepInfo, fair.PoolLedger]:
    ledger = situation.ledgers.get(team.id, NO_LEDGER)
    ledger = fair.open_window(ledger, fair.make_roster([(r.id, r.weight) for r in eligible]))
    if strategy == "round_robin":
        picked = fair.pick(ledger)
        chosen = next(rep for rep in eligible if rep.id == picked)
    else:
        loads = situation.loads

        def load(rep: RepInfo) -> float:
            current = loads.get(rep.id, NO_LOAD)
            if strategy == "capacity" and rep.max_open:
                return current.open_leads / rep.max_open
            return current.open_leads / rep.weight

        chosen = min(
            eligible, key=lambda r: (round(load(r), 9), -round(ledger.balance(r.id), 9), r.id)
        )
    return chosen, fair.record(ledger, chosen.id)


def _unavailable(rep: RepInfo, now: datetime, exclude: frozenset[UUID]) -> str | None:
    if rep.status != "active":
        return "deactivated"
    if rep.is_away(now):
        return "away"
    if exclude and rep.id in exclude:
        return "excluded"
    return None


def _skip_reason(
    rep: RepInfo, team: TeamInfo, rule: RouteRule | None, situation: Situation
) -> str | None:
    why = _skip_before_load(rep, team, rule, situation)
    if why is not None:
        return why
    now = situation.now
    load = situation.loads.get(rep.id, NO_LOAD)
    if rep.max_open is not None and load.open_leads >= rep.max_open:
        return "at_capacity"
    if (
        rep.max_per_day is not None
        and load.today >= rep.max_per_day  # what assigned_on gives at most: no need for the day
        and load.assigned_on(rep.hours.local_day(now)) >= rep.max_per_day
    ):
        return "daily_cap"
    return None


def _skip_before_load(
    rep: RepInfo, team: TeamInfo, rule: RouteRule | None, situation: Situation
) -> str | None:
    """The skip reasons that do not depend on the rep's load, in their order (``needs``)."""
    now, facts = situation.now, situation.facts
    why = _unavailable(rep, now, situation.exclude)
    if why is not None:
        return why
    if rule is not None:
        if rule.roles and not rep.roles & set(rule.roles):
            return "role"
        if rule.segments and not rep.segments & set(rule.segments):
            return "segment"
        for attribute in rule.match:
            if not _fits(rep, attribute, facts):
                return attribute
    if team.outside_hours == "skip" and not rep.hours.is_open(now):
        return "outside_hours"
    return None


def _fits(rep: RepInfo, attribute: str, facts: Mapping[str, Any]) -> bool:
    if attribute == "territory":
        return territory_matches(
            rep.territories, facts["country"], facts["region"], facts["postal_code"]
        )
    value = facts[attribute]
    values = rep.languages if attribute == "language" else rep.products
    return not value or value in values


def _held_until(rep: RepInfo, now: datetime) -> datetime | None:
    if rep.hours.is_open(now):
        return None
    return rep.hours.next_open(now)


def _queued(
    rule: str,
    reason: str,
    team: TeamInfo | None,
    expansion: bool,
    account_id: UUID | None,
    candidates: tuple[Candidate, ...],
) -> Decision:
    return Decision(
        "queued",
        rule,
        reason,
        team=team,
        is_expansion=expansion,
        account_id=account_id,
        candidates=candidates,
    )
