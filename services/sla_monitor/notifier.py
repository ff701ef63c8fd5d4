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
from datetime import datetime
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.sla_monitor.mailer import Mailer
from services.sla_monitor.messages import NOTICES, LeadCard, compose
from services.sla_monitor.settings import sla_config
from shared.config import Settings
from shared.events import CloudEvent
from shared.models import Inquiry, Lead
from shared.runtime import Runtime

log = logging.getLogger(__name__)
CONSUMER = "sla-notifier"


class Notifier:
    """Emails the people an SLA event names; never commits (the consumer owns the transaction)."""

    def __init__(self, mailer: Mailer, *, sender: str, public_url: str) -> None:
        self.mailer = mailer
        self.sender = sender
        self.public_url = public_url

    async def __call__(self, event: CloudEvent, *, session: AsyncSession, now: datetime) -> None:
        if not isinstance(event, NOTICES) or not event.data.notify:
            return
        lead = await lead_card(session, event.data.lead_id)
        if lead is None:
            log.info(
                "%s %s: lead %s is gone, erased or a test lead; nobody mailed",
                event.type,
                event.id,
                event.data.lead_id,
            )
            return
        messages = compose(event, lead, sender=self.sender, public_url=self.public_url)
        await self.mailer.send(messages)


async def lead_card(session: AsyncSession, lead_id: UUID) -> LeadCard | None:
    """The lead as a rep needs it; None if it is gone, erased or a test lead."""
    lead = await session.get(Lead, lead_id)
    if lead is None or lead.erased_at is not None or lead.is_test:
        return None
    name = " ".join(part for part in (lead.first_name, lead.last_name) if part)
    return LeadCard(
        lead_id=lead.id,
        source=lead.source,
        stage=lead.stage,
        name=name or None,
        company=lead.company,
        title=await _title(session, lead_id),
        phone=lead.phone,
        email=lead.email,
        fit_grade=lead.fit_grade,
        score=lead.score,
        stage_reason=lead.stage_reason,
    )


async def _title(session: AsyncSession, lead_id: UUID) -> str | None:
    """The job title the lead gave in its latest inquiry, if any."""
    submission = await session.scalar(
        select(Inquiry.submission)
        .where(Inquiry.lead_id == lead_id)
        .order_by(Inquiry.received_at.desc(), Inquiry.id.desc())
        .limit(1)
    )
    title = submission.get("title") if isinstance(submission, dict) else None
    return title if isinstance(title, str) and title.strip() else None


def notifier_for(settings: Settings) -> Notifier:
    config = sla_config(settings)
    return Notifier(
        Mailer(config.smtp), sender=config.smtp.sender, public_url=config.sla.public_url
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
