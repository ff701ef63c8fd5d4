"""The invariants of a fault run, judged from the database (``Truth``), the load's ledger of
accepted posts and what the CRM received.

``outstanding`` are the effects still to come: the run settles when none is left (``settle``),
and any left at its deadline is an effect lost. ``exact`` are the effects that must have happened
once: a second inquiry for one post, a second score for one input, a second routing, a tier fired
twice, a second event for one effect under another ``webhook-id``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass

import asyncpg

from tests.support.deliveries import Deliveries
from tests.support.effects import CLOSINGS, FACT_TYPES, TIERS, Truth, read_truth
from tests.support.load import Load

LEAD_POSTS = {"json": "inquiry", "form": "inquiry", "google-ads": "inquiry"}
ONCE_PER_LEAD = ("lead.mql", "lead.routed")
"""No lead of a run qualifies twice (nothing revives a rejected lead) nor is reassigned (the SLA
ladder only notifies), so each of these happens at most once per lead."""


@dataclass(frozen=True)
class Check:
    invariant: str
    expected: str
    actual: str
    ok: bool | None


def equal(invariant: str, expected: int, actual: int) -> Check:
    return Check(invariant, f"{expected:,}", f"{actual:,}", actual == expected)


def zero(invariant: str, actual: int) -> Check:
    return equal(invariant, 0, actual)


def outstanding(truth: Truth, load: Load, crm: Deliveries, topics: set[str]) -> list[Check]:
    """Effects still to come; each must be 0 once the run has settled."""
    waiting = truth.unconsumed()
    return [
        zero("accepted posts not stored", len(unstored(truth, load))),
        zero(
            "inputs not scored (inquiries, activities, outcomes)",
            sum(max(n - truth.scored[lead], 0) for lead, n in truth.inputs.items()),
        ),
        zero("outbox rows unpublished", sum(not r.published for r in truth.outbox)),
        Check(
            "events not yet processed, per consumer",
            "0",
            ", ".join(f"{c} {n}" for c, n in sorted(waiting.items()) if n) or "0",
            not any(waiting.values()),
        ),
        zero("leads waiting to be routed (pending, failed)", truth.routing_waiting),
        zero("SLA clocks with tiers still to fall due", sum(c.next_due_at is not None
                                                           for c in truth.clocks)),
        zero("webhook messages pending", truth.webhooks["pending"]),
        zero("lifecycle and SLA events not delivered", len(undelivered(truth, crm, topics))),
        zero("funnel facts missing", len(missing_facts(truth))),
        zero("accepted leads without a funnel line", len(set(load.accepted) - set(truth.lines))),
    ]  # fmt: skip


def exact(truth: Truth, load: Load, crm: Deliveries, topics: set[str]) -> list[Check]:
    """Effects that must have happened exactly once (or never, for the failures)."""
    return [
        zero("posts stored more than once", stored_twice(truth, load)),
        zero("inputs scored more than once",
             sum(max(truth.scored[lead] - n, 0) for lead, n in truth.inputs.items())),
        zero("leads routed more than once", once_per_lead(truth, "lead.routed")),
        zero("leads made MQL more than once", once_per_lead(truth, "lead.mql")),
        zero("MQL leads neither routed nor queued, nor closed", len(unrouted(truth))),
        zero("reps over capacity (open leads > max_open)",
             sum(r["owning"] > r["max_open"] for r in truth.reps)),
        zero("reps whose open-lead count is not their open leads",
             sum(r["owning"] != r["open_leads"] for r in truth.reps)),
        zero("SLA tiers fired more than once", tiers_twice(truth)),
        zero("SLA tiers due while their clock was open, never fired", len(unfired(truth))),
        zero("SLA clocks closed more than once", closed_twice(truth)),
        zero("delivered events the database does not name", len(strangers(truth, crm, topics))),
        zero("duplicates after dedupe by webhook-id", duplicated_effects(truth, crm)),
        zero("deliveries whose webhook-id is not the event id", crm.mislabelled),
        Check("webhook messages exhausted or failed", "0",
              f"{len(truth.webhook_problems):,}", not truth.webhook_problems),
        zero("funnel lines that disagree with the lead", len(wrong_lines(truth, load))),
    ]  # fmt: skip


async def settle(
    dsn: str, load: Load, crm: Deliveries, topics: set[str], *, within: float
) -> tuple[Truth | None, float]:
    """Read the database each second until nothing is outstanding or ``within`` seconds have
    passed: the last reading (``None`` if the database never answered) and the seconds taken."""
    started = time.monotonic()
    truth: Truth | None = None
    while True:
        try:
            truth = await read_truth(dsn)
        except (OSError, asyncpg.PostgresError):  # a fault's tail: the server is starting up
            pass
        took = time.monotonic() - started
        done = truth is not None and all(c.ok for c in outstanding(truth, load, crm, topics))
        if done or took > within:
            return truth, took
        await asyncio.sleep(1.0)  # the poll's interval; the condition above ends the wait


def unstored(truth: Truth, load: Load) -> list[str]:
    return [
        f"{post.kind} {post.stored_id} of lead {post.lead_id}"
        for post in load.posts
        if truth.stored[LEAD_POSTS.get(post.kind, post.kind)].get(post.stored_id) != post.lead_id
    ]


def stored_twice(truth: Truth, load: Load) -> int:
    """Rows beyond the posts accepted: per lead, inquiries, activities and outcomes."""
    wanted: dict[str, Counter[str]] = {"inquiry": Counter(), "activity": Counter(),
                                       "outcome": Counter()}  # fmt: skip
    for post in load.posts:
        wanted[LEAD_POSTS.get(post.kind, post.kind)][post.lead_id] += 1
    return sum(
        max(n - wanted[kind][lead], 0)
        for kind, per_lead in truth.per_lead.items()
        for lead, n in per_lead.items()
        if lead in load.accepted
    )


def once_per_lead(truth: Truth, kind: str) -> int:
    return sum(n > 1 for n in Counter(r.lead for r in truth.events(kind)).values())


CLOSING_STAGES = ("lead.recycled", "lead.disqualified")
PAST_ROUTING = {"opportunity", "booked", "won", "lost"}
"""After these a lead waits for no owner: routing takes leads at MQL, SAL or SQL
(services/routing/assign.QUALIFIED), and one the CRM reports as an opportunity, booked, won or
lost before routing reached it is already worked there (the outcome is the record: those
stages have no event of their own)."""


def unrouted(truth: Truth) -> set[str]:
    """MQLs never routed nor queued, nor past routing: a lead rejected (recycled) or booked in
    the scoring batch that made it an MQL is past routing when routing reaches it, rightly."""
    decided = {r.lead for r in truth.events("lead.routed", "lead.queued")}
    closed = {r.lead for r in truth.events(*CLOSING_STAGES)}
    closed |= {lead for lead, outcomes in truth.outcomes.items() if outcomes & PAST_ROUTING}
    return {r.lead for r in truth.events("lead.mql")} - decided - closed


def tiers_twice(truth: Truth) -> int:
    fired = Counter((r.clock, r.tier) for r in truth.events(*TIERS))
    return sum(n > 1 for n in fired.values())


def closed_twice(truth: Truth) -> int:
    return sum(n > 1 for n in Counter(r.clock for r in truth.events(*CLOSINGS)).values())


def unfired(truth: Truth) -> list[str]:
    """Tiers that fell due while their clock was open (before it closed, or before now) without
    a tier event, and not passed over (with its reason, in the clock's row)."""
    fired = {(r.clock, r.tier) for r in truth.events(*TIERS)}
    missing = []
    for clock in truth.clocks:
        if (clock.id, "0") not in fired:
            missing.append(f"clock {clock.id} ({clock.kind}) never started")
        end = clock.closed_at or truth.now
        for index, due in enumerate(clock.dues, start=1):
            if due < end and (clock.id, str(index)) not in fired and index not in clock.passed:
                missing.append(f"clock {clock.id} ({clock.kind}, {clock.state}) tier {index}")
    return missing


def undelivered(truth: Truth, crm: Deliveries, topics: set[str]) -> list[str]:
    return [f"{r.type} {r.id} of lead {r.lead}" for r in truth.deliverable(topics)
            if r.id not in crm.first]  # fmt: skip


def strangers(truth: Truth, crm: Deliveries, topics: set[str]) -> list[str]:
    named = {r.id for r in truth.deliverable(topics)}
    return [f"{d.type} {d.event_id}" for d in crm.first.values() if d.event_id not in named]


def duplicated_effects(truth: Truth, crm: Deliveries) -> int:
    """Effects the CRM received twice under different ``webhook-id``\\ s, which its dedupe cannot
    catch: a stage or a routing twice for one lead, an SLA tier or closing twice for one clock,
    more scores of a lead than it had inputs."""
    types = {r.id: r for r in truth.outbox}
    keys: Counter[tuple[str, ...]] = Counter()
    scores: Counter[str] = Counter()
    for event_id in crm.first:
        row = types.get(event_id)
        if row is None:
            continue
        if row.type in ONCE_PER_LEAD:
            keys[(row.type, row.lead)] += 1
        elif row.type in TIERS:
            keys[("tier", row.clock or "", row.tier or "")] += 1
        elif row.type in CLOSINGS:
            keys[("closing", row.clock or "")] += 1
        elif row.type == "lead.scored":
            scores[row.lead] += 1
    extra_scores = sum(max(n - truth.inputs[lead], 0) for lead, n in scores.items())
    return sum(n - 1 for n in keys.values()) + extra_scores


def missing_facts(truth: Truth) -> list[str]:
    return [f"{r.type} {r.id}" for r in truth.outbox
            if r.type in FACT_TYPES and r.id not in truth.facts]  # fmt: skip


def wrong_lines(truth: Truth, load: Load) -> list[str]:
    """Funnel lines whose MQL, opportunity or booking is not what the lead's events say."""
    mqls = {r.lead for r in truth.events("lead.mql")}
    wrong = []
    for lead in load.accepted:
        line = truth.lines.get(lead)
        if line is None:
            continue
        outcomes = truth.outcomes.get(lead, set())
        expected = (lead in mqls, "opportunity" in outcomes, bool(outcomes & {"booked", "won"}))
        actual = (line["mql"], line["opportunity"], line["booked"])
        if actual != expected:
            wrong.append(f"lead {lead}: line {actual}, events {expected} (mql, opp, booked)")
    return wrong
