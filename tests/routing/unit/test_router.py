"""The pure router: strategies, skip reasons, holding for working hours, ties, account matching."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from rapidfuzz import fuzz, process

from services.routing import ledger as fair
from services.routing.accounts import AccountIndex, AccountInfo, normalise_name
from services.routing.directory import Directory, RepInfo, RepLoad, TeamInfo
from services.routing.facts import EMPTY_FACTS
from services.routing.router import Situation, route
from services.routing.rules import RoutingInvalid, compile_routing
from shared.business_hours import WorkingHours, parse_hours

NOW = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # Tuesday 15:00 UTC
POOL = UUID(int=100)
RULES = """
name: t
default_queue: pool
rules:
  - {id: de, when: 'lead.country == "DE"', team: pool, match: [language]}
"""


def rep_id(n: int) -> UUID:
    return UUID(int=n)


def make_rep(n: int, **values: Any) -> RepInfo:
    return RepInfo(rep_id(n), f"r{n}@co.com", f"r{n}", **values)


def make_directory(
    reps: list[RepInfo],
    *,
    strategy: str = "round_robin",
    outside_hours: str = "skip",
    rules: str = RULES,
    accounts: list[AccountInfo] = (),  # type: ignore[assignment]
) -> Directory:
    team = TeamInfo(POOL, "pool", strategy, outside_hours, members=tuple(r.id for r in reps))  # type: ignore[arg-type]
    return Directory(
        "t",
        {r.id: r for r in reps},
        {POOL: team},
        AccountIndex(list(accounts)),
        compile_routing(rules),
    )


def lead(**facts: Any) -> dict[str, Any]:
    return {**EMPTY_FACTS, **facts}


def run(directory: Directory, n: int, **situation: Any) -> list[UUID | None]:
    ledger = fair.PoolLedger()
    owners = []
    for _ in range(n):
        decision = route(directory, Situation(lead(), NOW, ledgers={POOL: ledger}, **situation))
        owners.append(decision.owner_id)
        ledger = decision.ledger or ledger
    return owners


def test_weighted_round_robin_follows_the_weights_and_breaks_ties_by_rep_id() -> None:
    directory = make_directory([make_rep(1), make_rep(2, weight=2), make_rep(3)])
    owners = run(directory, 8)
    assert owners[:4].count(rep_id(2)) == 2 and owners.count(rep_id(2)) == 4
    assert owners[0] == rep_id(2)  # the heaviest is due first
    assert owners[1] == rep_id(1)  # then equal deadlines: the smaller id


def test_equal_weights_rotate_in_id_order() -> None:
    directory = make_directory([make_rep(3), make_rep(1), make_rep(2)])
    assert run(directory, 6) == [rep_id(i) for i in (1, 2, 3, 1, 2, 3)]


def test_least_loaded_picks_the_fewest_open_leads_per_weight_ties_by_id() -> None:
    directory = make_directory(
        [make_rep(1), make_rep(2, weight=2), make_rep(3)], strategy="least_loaded"
    )
    loads = {rep_id(1): RepLoad(4), rep_id(2): RepLoad(6), rep_id(3): RepLoad(5)}
    assert route(directory, Situation(lead(), NOW, loads=loads)).owner_id == rep_id(2)
    loads[rep_id(2)] = RepLoad(8)
    assert route(directory, Situation(lead(), NOW, loads=loads)).owner_id == rep_id(1)  # 4 = 4


def test_capacity_strategy_fills_in_proportion_to_capacity() -> None:
    directory = make_directory(
        [make_rep(1, max_open=10), make_rep(2, max_open=40)], strategy="capacity"
    )
    loads = {rep_id(1): RepLoad(3), rep_id(2): RepLoad(10)}
    assert route(directory, Situation(lead(), NOW, loads=loads)).owner_id == rep_id(2)
    loads = {rep_id(1): RepLoad(2), rep_id(2): RepLoad(10)}
    assert route(directory, Situation(lead(), NOW, loads=loads)).owner_id == rep_id(1)


@pytest.mark.parametrize(
    ("rep", "loads", "reason"),
    [
        (make_rep(1, status="deactivated"), {}, "deactivated"),
        (make_rep(1, away_until=NOW + timedelta(hours=1)), {}, "away"),
        (make_rep(1, max_open=3), {rep_id(1): RepLoad(3)}, "at_capacity"),
        (make_rep(1, max_per_day=2), {rep_id(1): RepLoad(0, "2026-11-24", 2)}, "daily_cap"),
        (
            make_rep(1, hours=WorkingHours.of("Asia/Tokyo", parse_hours("mon-fri 09:00-17:00"))),
            {},
            "outside_hours",
        ),
    ],
)
def test_each_skip_reason_is_recorded_and_with_nobody_left_the_lead_is_queued(
    rep: RepInfo, loads: dict, reason: str
) -> None:
    decision = route(make_directory([rep]), Situation(lead(), NOW, loads=loads))
    assert decision.outcome == "queued" and decision.owner_id is None
    assert [(c.rep_id, c.status, c.reason) for c in decision.candidates] == [
        (rep_id(1), "skipped", reason)
    ]


@pytest.mark.parametrize("seed", range(5))
def test_candidates_list_the_chosen_first_then_every_member_by_rep_id(seed: int) -> None:
    rng = random.Random(seed)
    reps = [
        make_rep(
            n,
            status=rng.choice(["active", "active", "deactivated"]),
            max_open=rng.choice([None, 2]),
            max_per_day=rng.choice([None, 0, 1]),
        )
        for n in rng.sample(range(1, 60), 15)
    ]
    directory = make_directory(reps, strategy=rng.choice(["round_robin", "least_loaded"]))
    for _ in range(30):
        loads = {
            r.id: RepLoad(rng.randint(0, 3), rng.choice(["2026-11-24", "2026-11-23"]), 1)
            for r in rng.sample(reps, 8)
        }
        decision = route(directory, Situation(lead(), NOW, loads=loads))
        shown = [(c.status != "chosen", c.rep_id) for c in decision.candidates]
        assert shown == sorted(shown)
        assert sorted(c.rep_id for c in decision.candidates) == sorted(r.id for r in reps)
        assert [c.rep_id for c in decision.candidates if c.status == "chosen"] == (
            [decision.owner_id] if decision.owner_id else []
        )


def test_away_until_in_the_past_and_yesterdays_daily_count_do_not_skip() -> None:
    rep = make_rep(1, away_until=NOW - timedelta(seconds=1), max_per_day=2)
    loads = {rep_id(1): RepLoad(0, "2026-11-23", 2)}
    assert route(make_directory([rep]), Situation(lead(), NOW, loads=loads)).owner_id == rep_id(1)


def test_excluded_reps_are_skipped_so_a_reassignment_never_returns_the_lead() -> None:
    directory = make_directory([make_rep(1), make_rep(2)])
    decision = route(directory, Situation(lead(), NOW, exclude=frozenset({rep_id(1)})))
    assert decision.owner_id == rep_id(2)
    assert ("skipped", "excluded") in [(c.status, c.reason) for c in decision.candidates]


def test_a_rule_filter_skips_reps_that_do_not_fit_the_lead() -> None:
    directory = make_directory(
        [make_rep(1, languages=frozenset({"fr"})), make_rep(2, languages=frozenset({"de"}))]
    )
    decision = route(directory, Situation(lead(country="DE", language="de"), NOW))
    assert decision.rule == "de" and decision.owner_id == rep_id(2)
    assert decision.candidates[1].reason == "language"


def test_hold_keeps_out_of_hours_reps_in_the_rotation_and_holds_the_lead_until_they_start() -> None:
    tokyo = WorkingHours.of("Asia/Tokyo", parse_hours("mon-fri 09:00-17:00"))
    directory = make_directory([make_rep(1, hours=tokyo)], outside_hours="hold")
    decision = route(directory, Situation(lead(), NOW))
    assert decision.outcome == "routed" and decision.owner_id == rep_id(1)
    assert decision.available_at == datetime(2026, 11, 25, 0, 0, tzinfo=UTC)  # 09:00 JST


def test_an_account_match_routes_to_the_owner_and_marks_expansion() -> None:
    owner = make_rep(9)
    accounts = [AccountInfo(UUID(int=50), "Globex Corporation", "globex.com", owner.id)]
    directory = make_directory([make_rep(1), owner], accounts=accounts)
    for facts in (
        lead(email_domain="globex.com"),
        lead(company="Globex Corp."),
        lead(company="globex"),
    ):
        decision = route(directory, Situation(facts, NOW))
        assert (decision.rule, decision.owner_id, decision.is_expansion) == (
            "account_match",
            owner.id,
            True,
        )
    other = route(directory, Situation(lead(company="Globex Robotics"), NOW))
    assert other.is_expansion is False and other.rule == "default_queue"
    free = route(directory, Situation(lead(email_domain="gmail.com", free_mail=True), NOW))
    assert free.is_expansion is False


@pytest.mark.parametrize("threshold", [50, 75, 90, 97])
def test_fuzzy_account_names_match_as_comparing_every_name_would(threshold: int) -> None:
    """The length window skips only names that could not reach the threshold: the same best
    match (and the same tie-break, the older account) as scoring every name."""
    rng = random.Random(threshold)
    words = ["acme", "globex", "initech", "umbrella", "stark", "wonka", "hooli", "labs", "ai"]
    accounts = [
        AccountInfo(
            UUID(int=i + 1), " ".join(rng.sample(words, rng.randint(1, 3))) + f" {i}", None, None
        )
        for i in range(300)
    ] + [AccountInfo(UUID(int=1000 + i), name, None, None) for i, name in enumerate(["ab", "ba"])]
    index = AccountIndex(accounts)
    everyone = list(index.by_name)  # in account order
    queries = [account.name for account in rng.sample(accounts, 100)] + ["aa", "b"]
    # Near misses both ways: longer and shorter than the names they resemble.
    queries += [q + rng.choice(["x", " co", "s"]) for q in queries] + [q[1:-2] for q in queries]
    for query in queries:
        name = normalise_name(query)
        _matches_as_rapidfuzz_over_all(index, everyone, query, name, threshold)


def _matches_as_rapidfuzz_over_all(
    index: AccountIndex, everyone: list[str], query: str, name: str, threshold: float
) -> None:
    """The index finds what rapidfuzz finds scoring every name (ties: the older account)."""
    expected = process.extractOne(name, everyone, scorer=fuzz.ratio, score_cutoff=threshold)
    found = index.match("", query, min_similarity=threshold)
    if expected is None:
        assert found is None, query
    else:
        assert found is not None, query
        assert found.account is index.by_name[expected[0]], query
        assert found.score == round(float(expected[1]), 1)


def _edited(rng: random.Random, text: str, edits: int) -> str:
    for _ in range(edits):
        at = rng.randrange(len(text) + 1)
        letter = rng.choice("aeiorstn 0123")
        text = rng.choice([text[:at] + letter + text[at:], text[:at] + text[at + 1 :]])
    return text


@pytest.mark.parametrize("threshold", [80, 85, 88, 90, 92.5, 95, 97, 100])
def test_names_without_a_piece_of_the_lead_name_are_skipped_without_changing_the_match(
    threshold: float,
) -> None:
    """Only names containing one of the lead name's pieces are scored (see accounts.py): on
    longer names and near misses a few edits away, the same match and tie-break as scoring
    every name, and fewer names scored."""
    rng = random.Random(int(threshold * 10))
    words = "acme global systems solutions data cloud labs north star blue river tech".split()
    names = [
        f"{' '.join(rng.sample(words, rng.randint(1, 3)))} {rng.randint(0, 999)}"
        for _ in range(1500)
    ]
    accounts = [AccountInfo(UUID(int=i + 1), n, None, None) for i, n in enumerate(names)]
    index = AccountIndex(accounts)
    everyone = list(index.by_name)
    queries = [_edited(rng, rng.choice(names), rng.randint(0, 4)) for _ in range(400)]
    queries += [f"prospect {i} ltd" for i in range(50)]
    narrowed = 0
    for query in queries:
        name = normalise_name(query)
        if not name:
            continue
        _matches_as_rapidfuzz_over_all(index, everyone, query, name, threshold)
        low, high = index._window(name, threshold)
        narrowed += low < high and len(index._candidates(name, threshold, low, high)) < high - low
    if threshold >= 90:  # the default; lower, the pieces get too short to narrow much
        assert narrowed > len(queries) * 3 // 4


def test_an_away_account_owner_is_skipped_but_the_lead_stays_expansion() -> None:
    owner = make_rep(9, away_until=NOW + timedelta(days=1))
    accounts = [AccountInfo(UUID(int=50), "Globex", "globex.com", owner.id)]
    decision = route(
        make_directory([make_rep(1), owner], accounts=accounts),
        Situation(lead(email_domain="globex.com"), NOW),
    )
    assert decision.owner_id == rep_id(1) and decision.is_expansion is True
    assert decision.candidates[0].reason == "account_owner_away"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("name: t\nrules: []\n", "default_queue"),
        (
            "name: t\ndefault_queue: q\nrules:\n  - {id: a, when: 'lead.', team: q}\n",
            "does not parse",
        ),
        (
            "name: t\ndefault_queue: q\nrules:\n  - {id: a, when: 'foo > 1', team: q}\n",
            "unknown variable",
        ),
        (
            "name: t\ndefault_queue: q\nrules:\n  - {id: a, when: 'lead.nope == 1', team: q}\n",
            "type-check",
        ),
        (
            "name: t\ndefault_queue: q\nrules:\n  - {id: a, when: 'lead.country', team: q}\n",
            "true or false",
        ),
    ],
)
def test_invalid_routing_rules_are_refused_with_the_reason(text: str, problem: str) -> None:
    with pytest.raises(RoutingInvalid, match=problem):
        compile_routing(text)
