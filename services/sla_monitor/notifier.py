"""The notifier: whoever an SLA event's ``notify`` names gets an email (consumer ``sla-notifier``).

It consumes the SLA topic (``sla.started``, ``sla.warning``, ``sla.breached``, ``sla.escalated``),
reads the lead as a rep needs it (``LeadCard``), composes the messages
(``services.sla_monitor.messages``) and hands them to the SMTP server
(``services.sla_monitor.mailer``). An erased lead is nobody's business any more and a test lead
is nobody's work: neither is mailed about.

Delivery is at least once. The email goes out inside the consumer's transaction, before its
processed-event row and offset commit: a crash (or a failed commit) after sending and before the
commit applies the event again and sends again. Within one process the mailer skips what the
server already accepted (a batch retried after one of its events failed), so duplicates come
from restarts. The transaction stays open during the SMTP conversation (at most
``smtp.timeout_s`` a message): on SQLite, the one writer's lock with it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.sla_monitor.mailer import Mailer
from services.sla_monitor.messages import NOTICES, LeadCard, compose, recipients
from services.sla_monitor.settings import sla_config
from shared.config import Settings
from shared.db import among
from shared.events import CloudEvent
from shared.models import Inquiry, Lead, LeadHistory
from shared.runtime import Runtime

log = logging.getLogger(__name__)
CONSUMER = "sla-notifier"
QUALIFYING = ("lead.mql", "lead.sql")


class Notifier:
    """Emails the people an SLA event names; never commits (the consumer owns the transaction)."""

    handles = NOTICES

    def __init__(self, mailer: Mailer, *, sender: str, public_url: str) -> None:
        self.mailer = mailer
        self.sender = sender
        self.public_url = public_url

    async def __call__(self, event: CloudEvent, *, session: AsyncSession, now: datetime) -> None:
        await self.handle_batch([event], session=session, now=now)

    async def handle_batch(
        self, events: Sequence[CloudEvent], *, session: AsyncSession, now: datetime
    ) -> None:
        """A batch's notices at once: their leads read in two queries, then the mail sent."""
        notices = [e for e in events if isinstance(e, NOTICES) and e.data.notify]
        if not notices:
            return
        cards = await lead_cards(session, {e.data.lead_id for e in notices})
        messages = []
        for event in notices:
            lead = cards.get(event.data.lead_id)
            if lead is None:
                log.info(
                    "%s %s: lead %s is gone, erased or a test lead; nobody mailed",
                    event.type,
                    event.id,
                    event.data.lead_id,
                )
                continue
            if not self.mailer.configured:  # no server: say who would be told, compose nothing
                for recipient in recipients(event):
                    # The lead's id, not its name: logs outlive an erasure.
                    log.info("smtp host not set; not sent to %s: %s for lead %s", recipient,
                             event.type, event.data.lead_id)  # fmt: skip
                continue
            messages += compose(event, lead, sender=self.sender, public_url=self.public_url)
        if messages:
            await self.mailer.send(messages)


async def lead_cards(session: AsyncSession, lead_ids: Collection[UUID]) -> dict[UUID, LeadCard]:
    """The leads as reps need them, but those gone, erased or test leads."""
    leads = await session.scalars(
        select(Lead).where(
            among(session, Lead.id, lead_ids),
            Lead.erased_at.is_(None),
            Lead.is_test.is_(False),
        )
    )
    titles, rules = await _titles(session, lead_ids), await _rules(session, lead_ids)
    return {
        lead.id: LeadCard(
            lead_id=lead.id,
            source=lead.source,
            stage=lead.stage,
            name=" ".join(p for p in (lead.first_name, lead.last_name) if p) or None,
            company=lead.company,
            title=titles.get(lead.id),
            phone=lead.phone,
            email=lead.email,
            fit_grade=lead.fit_grade,
            score=lead.score,
            stage_reason=lead.stage_reason,
            rules=rules.get(lead.id, ()),
        )
        for lead in leads
    }


async def _titles(session: AsyncSession, lead_ids: Collection[UUID]) -> dict[UUID, str]:
    """The job title each lead gave in its latest inquiry that gave one."""
    rows = await session.execute(
        select(Inquiry.lead_id, Inquiry.submission)
        .where(among(session, Inquiry.lead_id, lead_ids))
        .order_by(Inquiry.received_at, Inquiry.id)
    )
    found: dict[UUID, str] = {}
    for lead_id, submission in rows:
        title = submission.get("title") if isinstance(submission, dict) else None
        if isinstance(title, str) and title.strip():
            found[lead_id] = title
    return found


async def _rules(session: AsyncSession, lead_ids: Collection[UUID]) -> dict[UUID, tuple[str, ...]]:
    """The rules of each lead's latest move to MQL or SQL, as scoring wrote its history."""
    rows = await session.execute(
        select(LeadHistory.lead_id, LeadHistory.detail)
        .where(among(session, LeadHistory.lead_id, lead_ids), LeadHistory.kind.in_(QUALIFYING))
        .order_by(LeadHistory.occurred_at, LeadHistory.id)
    )
    found: dict[UUID, tuple[str, ...]] = {}
    for lead_id, detail in rows:
        rules = detail.get("rules") if isinstance(detail, dict) else None
        if isinstance(rules, list):
            found[lead_id] = tuple(str(r) for r in rules)
    return found


def notifier_for(settings: Settings) -> Notifier:
    config = sla_config(settings)
    return Notifier(
        Mailer(config.smtp), sender=config.smtp.sender, public_url=config.http.public_url
    )


def start_notifier(runtime: Runtime, *, name: str = CONSUMER) -> None:
    """Consume the SLA topic in the background as ``sla-notifier`` (its own consumer group: its
    offsets are not routing's)."""
    runtime.start_consumer(
        CONSUMER,
        [runtime.settings.topics.sla],
        notifier_for(runtime.settings),
        name=name,
        fetch_max_wait_ms=runtime.settings.kafka.sla_fetch_max_wait_ms,
    )
