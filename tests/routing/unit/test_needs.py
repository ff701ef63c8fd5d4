"""``router.needs``: the pool and reps a decision may read or change, worked out before the
routing transaction locks them. Exactly those: the decision never depends on another rep's load
or another pool's ledger, and never gives the lead to a rep outside them."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from services.routing import ledger as fair
from services.routing.accounts import AccountIndex, AccountInfo
from services.routing.directory import Directory, RepInfo, RepLoad, TeamInfo
from services.routing.facts import EMPTY_FACTS
from services.routing.router import NO_LOAD, Needs, Situation, needs, route
from services.routing.rules import compile_routing
from shared.business_hours import WorkingHours, parse_hours

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # Tuesday 15:00 UTC
POOL, OTHER = UUID(int=100), UUID(int=101)
TOKYO = WorkingHours.of("Asia/Tokyo", parse_hours("mon-fri 09:00-17:00"))
RULES = """
name: t
default_queue: pool
reassignment: {max_per_lead: 2}
rules:
  - {id: de, when: 'lead.country == "DE"', team: pool, match: [language]}
  - {id: jp, when: 'lead.country == "JP"', team: other}
  - {id: gone, when: 'lead.country == "FR"', team: nowhere}
"""
GLOBEX = UUID(int=50)


def rep(n: int, **values: Any) -> RepInfo:
    return RepInfo(UUID(int=n), f"r{n}@co.com", f"r{n}", **values)


def directory(
    pool: list[RepInfo],
    other: list[RepInfo] = (),
    owner: int | None = None,  # type: ignore[assignment]
) -> Directory:
    reps = {r.id: r for r in [*pool, *other]}
    teams = {
        POOL: TeamInfo(POOL, "pool", members=tuple(r.id for r in pool)),
        OTHER: TeamInfo(OTHER, "other", "least_loaded", members=tuple(r.id for r in other)),
    }
    owner_id = UUID(int=owner) if owner is not None else None
    accounts = AccountIndex([AccountInfo(GLOBEX, "Globex", "globex.com", owner_id)])
    return Directory("t", reps, teams, accounts, compile_routing(RULES))


def lead(**facts: Any) -> dict[str, Any]:
    return {**EMPTY_FACTS, **facts}


def ids(*numbers: int) -> frozenset[UUID]:
    return frozenset(UUID(int=n) for n in numbers)


@pytest.mark.parametrize(
    ("pool", "facts", "situation", "expected"),
    [
        # Every member of the target pool, at capacity or not (that depends on load).
        ([rep(1), rep(2, max_open=0), rep(3, max_per_day=1)], {}, {}, ({POOL}, ids(1, 2, 3))),
        # Not those skipped whatever their load: deactivated, away, excluded, outside hours.
        (
            [
                rep(1, status="deactivated"),
                rep(2, away_until=NOW + timedelta(hours=1)),
                rep(3),
                rep(4, hours=TOKYO),
                rep(5),
            ],
            {},
            {"exclude": ids(3)},
            ({POOL}, ids(5)),
        ),
        # Nor those the rule's filters leave out.
        (
            [rep(1, languages=frozenset({"de"})), rep(2, languages=frozenset({"fr"}))],
            {"country": "DE", "language": "de"},
            {},
            ({POOL}, ids(1)),
        ),
        # Nobody left before loads: queued without reading anything.
        ([rep(1, status="deactivated")], {}, {}, (set(), ids())),
        # The rule names a team that does not exist; past the reassignment limit.
        ([rep(1)], {"country": "FR"}, {}, (set(), ids())),
        ([rep(1)], {}, {"reassignments": 3}, (set(), ids())),
        # A customer's lead: its available owner, and nothing else (the pool is not needed).
        ([rep(1)], {"email_domain": "globex.com"}, {}, (set(), ids(9))),
        # The owner excluded (had the lead): the pool instead.
        ([rep(1)], {"email_domain": "globex.com"}, {"exclude": ids(9)}, ({POOL}, ids(1))),
    ],
)
def test_needs_names_the_pool_and_the_reps_whose_load_can_matter(
    pool: list[RepInfo],
    facts: dict[str, Any],
    situation: dict[str, Any],
    expected: tuple[set[UUID], frozenset[UUID]],
) -> None:
    found = needs(directory(pool, [rep(9)], owner=9), Situation(lead(**facts), NOW, **situation))
    assert found == Needs(frozenset(expected[0]), expected[1])


def _random_rep(rng: random.Random, n: int) -> RepInfo:
    return rep(
        n,
        weight=rng.randint(1, 3),
        status=rng.choice(["active", "active", "active", "deactivated"]),
        away_until=rng.choice([None, None, NOW + timedelta(days=1), NOW - timedelta(days=1)]),
        max_open=rng.choice([None, 0, 1, 3]),
        max_per_day=rng.choice([None, 1, 2]),
        hours=rng.choice([WorkingHours.of("UTC", {}), TOKYO]),
        languages=frozenset(rng.sample(["de", "en", "fr"], rng.randint(0, 2))),
    )


def _ledger(rng: random.Random, reps: list[RepInfo]) -> fair.PoolLedger:
    ledger = fair.open_window(fair.PoolLedger(), fair.make_roster([(r.id, r.weight) for r in reps]))
    for _ in range(rng.randint(0, 7)):
        ledger = fair.record(ledger, fair.pick(ledger))
    return ledger


@pytest.mark.parametrize("seed", range(40))
def test_a_decision_depends_only_on_what_needs_names(seed: int) -> None:
    """Random pools, loads, ledgers and leads: deciding with only the needed reps' loads and
    the needed pool's ledger (what the transaction holds) gives the same decision as with
    everything, and the lead goes to a needed rep."""
    rng = random.Random(seed)
    reps = [_random_rep(rng, n) for n in rng.sample(range(1, 40), 12)]
    pool, other = reps[:7], reps[5:]  # two reps in both
    chosen_owner = rng.choice([None, *(r.id.int for r in reps)])
    found = directory(pool, other, owner=chosen_owner)
    for _ in range(25):
        loads = {
            r.id: RepLoad(rng.randint(0, 3), rng.choice(["2026-11-24", "2026-11-23"]), 1)
            for r in reps
        }
        ledgers = {POOL: _ledger(rng, pool), OTHER: _ledger(rng, other)}
        facts = lead(
            country=rng.choice(["", "DE", "JP", "FR"]),
            language=rng.choice(["", "de", "en"]),
            email_domain=rng.choice(["", "", "", "globex.com"]),
        )
        situation = Situation(
            facts,
            NOW,
            loads=loads,
            ledgers=ledgers,
            exclude=frozenset(rng.sample([r.id for r in reps], rng.randint(0, 2))),
            reassignments=rng.choice([0, 0, 1, 3]),
        )
        wanted = needs(found, situation)
        held = Situation(
            facts,
            NOW,
            loads={r: loads.get(r, NO_LOAD) for r in wanted.reps},
            ledgers={p: ledgers[p] for p in wanted.pools},
            exclude=situation.exclude,
            reassignments=situation.reassignments,
        )
        everything, locked = route(found, situation), route(found, held)
        assert locked == everything
        if everything.owner_id is not None:
            assert everything.owner_id in wanted.reps
        if everything.ledger is not None:
            assert everything.team is not None and everything.team.id in wanted.pools
