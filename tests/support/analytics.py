"""A hand-computable funnel: seven leads, their rows and the events that tell their story, for
the analytics tests (tests/analytics).

The leads (March and April 2026, UTC; times in minutes after each lead's inquiry):

====  ==========  ===========  =====================================================
lead  source      campaign     what happened
====  ==========  ===========  =====================================================
A     web         spring       MQL +5 (v1), ana (an existing customer); SQL +1445;
                               opportunity +11525 (1,000);
                               booked +25925 (900) then won +30000 (950)
B     web         spring       MQL +60, bo; SQL +2940; lost
C     web         –            nothing more
D     google-ads  987 (ad)     MQL +30, queued for emea
E     web         –            SQL +1440 without an MQL; opportunity +4320 (500)
F     google-ads  –            a test lead: MQL; never counted
G     meta        –            MQL +120, ana, then reassigned to bo
====  ==========  ===========  =====================================================
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from typer.testing import CliRunner

from services.analytics.handlers import AnalyticsHandler
from services.analytics.settings import analytics_config
from services.analytics.versions import GOALS
from services.cli import app
from services.intake.analytics import inquiry_origins
from services.intake.models import PlatformLead
from shared.cosign import store as cosigned
from shared.events import (
    CloudEvent,
    LeadMql,
    LeadOutcome,
    LeadOutcomeData,
    LeadQueued,
    LeadQueuedData,
    LeadReassigned,
    LeadReassignedData,
    LeadReceived,
    LeadReceivedData,
    LeadRecycled,
    LeadRouted,
    LeadRoutedData,
    LeadSql,
    StageChangedData,
)
from shared.models import Inquiry, Lead
from tests.support.common import Database, make_settings

ANA, BO = UUID("0193a1b2-0000-7000-8000-0000000000a1"), UUID("0193a1b2-0000-7000-8000-0000000000b0")
MINUTE = timedelta(minutes=1)
SOURCE = "/tests"


class Leads:
    """The seven leads' rows and the events that tell their story."""

    def __init__(self) -> None:
        self.ids: dict[str, UUID] = {}
        self.inquiries: dict[str, UUID] = {}
        self.arrived: dict[str, datetime] = {}
        self.received: dict[str, LeadReceived] = {}
        self.rows: list[Any] = []

    def lead(
        self, name: str, source: str, at: datetime, submission: dict[str, Any], **lead: Any
    ) -> LeadReceived:
        lead_id, inquiry_id = uuid4(), uuid4()
        self.ids[name], self.inquiries[name], self.arrived[name] = lead_id, inquiry_id, at
        self.rows.append(Lead(id=lead_id, source=source, created_at=at, updated_at=at, **lead))
        self.rows.append(
            Inquiry(
                id=inquiry_id,
                lead_id=lead_id,
                source=source,
                received_at=at,
                submission=submission,
            )  # fmt: skip
        )
        data = LeadReceivedData(
            lead_id=lead_id,
            inquiry_id=inquiry_id,
            source=source,
            new_lead=True,
            is_test=bool(lead.get("is_test")),
        )
        event = self.received[name] = LeadReceived.about_lead(lead_id, data, source=SOURCE, time=at)
        return event

    def at(self, name: str, minutes: float) -> datetime:
        return self.arrived[name] + minutes * MINUTE

    def stage(
        self,
        kind: type[LeadMql | LeadSql],
        name: str,
        minutes: float,
        rules: list[str] = [],  # noqa: B006
    ) -> CloudEvent:
        to = "mql" if kind is LeadMql else "sql"
        data = StageChangedData(
            lead_id=self.ids[name], from_stage="inquiry", to_stage=to, cause="rules", rules=rules
        )
        return kind.about_lead(
            self.ids[name], data, source=SOURCE, time=self.at(name, minutes), ruleset="v1"
        )

    def outcome(
        self,
        name: str,
        outcome: str,
        minutes: float,
        amount: float | None = None,
        reason: str | None = None,
    ) -> LeadOutcome:
        data = LeadOutcomeData(
            lead_id=self.ids[name],
            outcome=outcome,  # type: ignore[arg-type]
            occurred_at=self.at(name, minutes),
            amount=amount,
            currency="EUR" if amount else None,
            reason=reason,
        )
        # reported to Leadflow a day later: the time that counts is when it happened
        return LeadOutcome.about_lead(
            self.ids[name], data, source=SOURCE, time=self.at(name, minutes + 1440)
        )

    def routed(
        self, name: str, owner: UUID, minutes: float, *, expansion: bool = False
    ) -> LeadRouted:
        data = LeadRoutedData(
            lead_id=self.ids[name], trigger="qualified", rule="default", team="emea",
            is_expansion=expansion, reason="round robin", owner_id=owner,
            owner_email=f"{owner.hex[-2:]}@example.com",
        )  # fmt: skip
        return LeadRouted.about_lead(
            self.ids[name], data, source=SOURCE, time=self.at(name, minutes)
        )


def story() -> tuple[Leads, list[list[CloudEvent]]]:
    """The leads, and their events in the batches they are applied in (scrambled: a lead's
    MQL before its inquiry, a booking before its opportunity, a reassignment before the first
    routing)."""
    leads = Leads()
    march, april = datetime(2026, 3, 2, 10, 0, tzinfo=UTC), datetime(2026, 4, 1, 9, 0, tzinfo=UTC)
    spring = {"utm": {"source": "newsletter", "medium": "email", "campaign": "spring"}}
    a = leads.lead("A", "web", march, spring | {"employees": 250})
    b = leads.lead("B", "web", march + timedelta(days=3), spring | {"company_size": "11-50"})
    c = leads.lead("C", "web", march + timedelta(days=6), {})
    d = leads.lead("D", "google-ads", april, {})
    e = leads.lead("E", "web", april + timedelta(days=1), {"custom": {"employees": 5000}})
    f = leads.lead("F", "google-ads", april + timedelta(days=2), {}, is_test=True)
    g = leads.lead("G", "meta", april + timedelta(days=9), {})
    d_queued = LeadQueued.about_lead(
        leads.ids["D"],
        LeadQueuedData(
            lead_id=leads.ids["D"],
            trigger="qualified",
            rule="default_queue",
            team="emea",
            is_expansion=False,
            reason="nobody free",
        ),  # fmt: skip
        source=SOURCE,
        time=leads.at("D", 31),
    )
    g_moved = LeadReassigned.about_lead(
        leads.ids["G"],
        LeadReassignedData(
            lead_id=leads.ids["G"],
            trigger="rejected",
            rule="default",
            team="emea",
            is_expansion=False,
            reason="round robin",
            previous_owner_id=ANA,
            owner_id=BO,
            owner_email="bo@example.com",
            why="wrong_territory",
        ),  # fmt: skip
        source=SOURCE,
        time=leads.at("G", 300),
    )
    batches: list[list[CloudEvent]] = [
        [
            leads.stage(LeadMql, "B", 60, ["business-email"]),
            leads.outcome("A", "booked", 25925, 900.0),
        ],
        [
            a,
            c,
            leads.stage(LeadMql, "A", 5, ["business-email", "senior-title"]),
            leads.routed("A", ANA, 6, expansion=True),
            g_moved,
        ],
        [b, leads.routed("B", BO, 61), leads.stage(LeadSql, "B", 2940), d, d_queued],
        [
            leads.stage(LeadSql, "A", 1445),
            leads.outcome("A", "opportunity", 11525, 1000.0),
            leads.outcome("A", "won", 30000, 950.0),
            leads.outcome("B", "lost", 5000),
            leads.stage(LeadMql, "D", 30, ["ad-lead"]),
        ],
        [e, leads.stage(LeadSql, "E", 1440), leads.outcome("E", "opportunity", 4320, 500.0)],
        [
            f,
            leads.stage(LeadMql, "F", 10),
            g,
            leads.stage(LeadMql, "G", 120, ["business-email", "webinar"]),
        ],
        [leads.routed("G", ANA, 121)],
    ]
    return leads, batches


async def seed(db: Database, leads: Leads) -> None:
    async with db.sessions.begin() as session:
        session.add_all([row for row in leads.rows if isinstance(row, Lead)])
        await session.flush()
        session.add_all([row for row in leads.rows if isinstance(row, Inquiry)])
        await session.flush()
        session.add(
            PlatformLead(
                platform="google-ads",
                platform_lead_id="gl-1",
                status="stored",
                lead_id=leads.ids["D"],
                inquiry_id=leads.inquiries["D"],
                received_at=leads.arrived["D"],
                detail={"campaign_id": 987, "form_id": 3},
            )  # fmt: skip
        )


async def apply(
    db: Database, handler: AnalyticsHandler, batches: Sequence[Sequence[CloudEvent]]
) -> None:
    for batch in batches:
        async with db.sessions.begin() as session:
            await handler.handle_batch(batch, session=session, now=datetime.now(UTC))


def handler_for(db: Database, **analytics: Any) -> AnalyticsHandler:
    settings = analytics_config(make_settings(db, analytics=analytics))
    return AnalyticsHandler(settings, inquiry_origins)


GOALS_TEXT = """
name: Spring 2026
start: 2026-03
revenue: {target: 120000, expansion_share: 0.25}
monthly: {mqls: 4, mql_to_sql: 0.5, opportunities: 2, bookings: 1}
months:
  2026-04: {mqls: 3}
teams: {emea: {mqls: 3}}
owners: {a1@example.com: {bookings: 2}}
"""


async def live(db: Database) -> None:
    """The seven leads applied, and ``GOALS_TEXT`` the live goals (unsigned, as a sample)."""
    leads, batches = story()
    await seed(db, leads)
    await apply(db, handler_for(db), batches)
    async with db.sessions.begin() as session:
        settings = make_settings(db)
        assert await cosigned.bootstrap(
            session, settings, GOALS, GOALS_TEXT, by="tests", now=datetime.now(UTC)
        )


async def leadflow(*args: str) -> tuple[int, str]:
    """``leadflow ARGS`` in a thread of its own (the command runs its own event loop): its exit
    code and output. The database is the one ``LEADFLOW_DB__URL`` names."""
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args))
    return result.exit_code, result.output


async def with_rejections(db: Database) -> Leads:
    """The seven leads, then sales rejects D (wrong territory) and G (no budget, which
    recycles it)."""
    leads, batches = story()
    await seed(db, leads)
    recycled = LeadRecycled.about_lead(
        leads.ids["G"],
        StageChangedData(
            lead_id=leads.ids["G"],
            from_stage="mql",
            to_stage="recycled",
            cause="outcome",
            outcome="rejected",
            reason="no_budget",
        ),  # fmt: skip
        source="/tests",
        time=leads.at("G", 201),
    )
    rejections = [
        leads.outcome("D", "rejected", 600, reason="wrong_territory"),
        leads.outcome("G", "rejected", 200, reason="no_budget"),
        recycled,
    ]
    await apply(db, handler_for(db), [*batches, rejections])
    return leads
