"""The consumer's handler: an event in, the messages to deliver recorded (no HTTP here)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import event as orm_event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from services.webhooks.crm.sync import CrmSync
from services.webhooks.dispatcher import Dispatcher
from services.webhooks.matching import ERASED
from services.webhooks.recording import Recorded, record_many
from services.webhooks.settings import WebhooksConfig
from services.webhooks.store import erase_copies
from shared.db import after_commit
from shared.events import Event


class RecordDeliveries:
    """Records one message per interested subscription, in the consumer's transaction (which
    also records the event as processed, so a redelivered event records nothing twice).

    With this process's ``dispatcher``, the messages that can go at once are leased in that
    transaction and handed to it when the transaction commits (no claim); the others, and all
    of them if the commit fails, are left to its claims. With this process's ``crm`` sync, the
    messages recorded for CRM subscriptions are announced to it after the commit (it batches
    them)."""

    def __init__(
        self,
        settings: WebhooksConfig,
        *,
        dispatcher: Dispatcher | None = None,
        crm: CrmSync | None = None,
    ) -> None:
        self.settings = settings
        self.dispatcher = dispatcher
        self.crm = crm

    async def __call__(self, event: Event, *, session: AsyncSession, now: datetime) -> None:
        await self.handle_batch([event], session=session, now=now)

    async def handle_batch(
        self, events: list[Event], *, session: AsyncSession, now: datetime
    ) -> None:
        recorded = await record_many(
            session, events, settings=self.settings, now=now, slots=self.dispatcher
        )
        for erased in {UUID(e.key) for e in events if e.type == ERASED}:
            # An event published before the erasure and read after it (a ``lead.qualified``
            # with the contact) was recorded after the erasure's own step ran: scrub again.
            await erase_copies(session, erased)
        if self.dispatcher is not None and recorded.count:
            _Handover(self.dispatcher, recorded).after(session.sync_session)
        if self.crm is not None and recorded.batched:
            crm, batched = self.crm, recorded.batched
            after_commit(session, lambda: crm.recorded(batched))


class _Handover:
    """What becomes of one transaction's leased messages: sent once it commits; their slots
    given back if it ends otherwise (rolled back, or the commit failed)."""

    def __init__(self, dispatcher: Dispatcher, recorded: Recorded) -> None:
        self.dispatcher = dispatcher
        self.recorded = recorded
        self.done = False

    def after(self, session: Session) -> None:
        # The session's own events: the consumer owns the transaction and commits it after this
        # handler returns; these fire on that commit, or on the end of a transaction without one.
        orm_event.listen(session, "after_commit", self._committed)
        orm_event.listen(session, "after_transaction_end", self._ended)

    def _committed(self, _session: Session) -> None:
        self.done = True
        self.dispatcher.accept(self.recorded.leased, waiting=self.recorded.waiting)

    def _ended(self, _session: Session, transaction: SessionTransaction, *_: Any) -> None:
        if self.done or transaction.parent is not None:
            return
        self.done = True
        for message in self.recorded.leased:
            self.dispatcher.unreserve(message.subscription_id)
