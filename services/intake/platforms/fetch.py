"""Fetching Meta leads from the Graph API, and the sweeper that keeps trying until it works.

A notification only names the lead; its fields are fetched afterwards. Each pending fetch is a
row (``platform_fetches``) that stays until the lead is stored. A sweep claims due rows with a
lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so replicas share the queue), fetches each with
a few quick retries, and either stores the lead — inquiry, answer and queue row in one
transaction — or reschedules the row. A row whose lease ran out is another sweep's to take; the
``claim`` token makes sure only the holder of the current lease can complete it.

The access token travels in the query string, as the Graph API documents. httpx logs request
URLs, so a filter on its logger blanks the token; errors are recorded by status code or exception
class, never by message (which would quote the URL).
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote
from uuid import UUID, uuid4

import httpx
from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.intake.models import PlatformFetch
from services.intake.platforms.mapping import (
    META_FIELDS,
    SubmissionInvalid,
    meta_answers,
    next_due,
    submission_from,
)
from services.intake.platforms.store import PlatformArrival, mark_invalid, store_platform_lead
from services.intake.settings import IntakeConfig, PlatformSettings
from shared.db import among
from shared.models import table_of
from shared.outages import unavailable
from shared.waits import woken

log = logging.getLogger(__name__)
fetches = table_of(PlatformFetch)
_TOKEN = re.compile(r"(access_token=)[^&\s'\"]+")


class _RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        if "access_token=" in message:
            record.msg, record.args = _TOKEN.sub(r"\1[redacted]", message), ()
        return True


for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).addFilter(_RedactTokens())


class FetchFailed(Exception):
    """The Graph API did not give the lead; ``reason`` is safe to store and log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def fetch_field_data(
    client: httpx.AsyncClient, settings: PlatformSettings, leadgen_id: str
) -> list[dict[str, Any]]:
    """``GET {base}/{leadgen_id}`` → ``field_data``, with a few quick retries."""
    if settings.meta_access_token is None:
        raise FetchFailed("LEADFLOW_PLATFORMS__META_ACCESS_TOKEN is not set")
    url = f"{settings.meta_graph_url.rstrip('/')}/{quote(leadgen_id, safe='')}"
    params = {"access_token": settings.meta_access_token.get_secret_value()}
    reason = "not tried"
    for attempt in range(settings.fetch_attempts):
        if attempt:
            await asyncio.sleep(settings.fetch_backoff_s * 2 ** (attempt - 1))
        try:
            response = await client.get(url, params=params, timeout=settings.fetch_timeout_s)
        except httpx.HTTPError as error:
            reason = f"request failed: {error.__class__.__name__}"
            continue
        if response.status_code == 200:
            try:
                body = response.json()
            except ValueError:
                reason = "response is not JSON"
                continue
            field_data = body.get("field_data") if isinstance(body, dict) else None
            if isinstance(field_data, list):
                return field_data
            reason = "response has no field_data"
        else:
            reason = f"HTTP {response.status_code}{_graph_error(response)}"
    raise FetchFailed(reason)


def _graph_error(response: httpx.Response) -> str:
    """The Graph error's type and code (not its message, which could echo request data)."""
    try:
        error = response.json().get("error", {})
        return f" ({error.get('type', '?')} code {error.get('code', '?')})"
    except (ValueError, AttributeError):
        return ""


@dataclass
class Claimed:
    fetch: PlatformFetch
    claim: UUID


class FetchSweeper:
    """Works through due pending fetches; ``sweep`` once, or ``run`` forever."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: IntakeConfig,
        *,
        on_commit: Any = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.on_commit = on_commit or (lambda: None)
        self.wakeup = asyncio.Event()

    def wake(self) -> None:
        self.wakeup.set()

    async def run(self) -> None:
        interval = self.settings.platforms.sweep_interval_s
        while True:
            try:
                done = await self.sweep(datetime.now(UTC))
            except Exception as error:  # database away: keep the rows, try again later
                log.warning("pending-fetch sweep failed (%s)", error.__class__.__name__)
                done = 0
            if done < self.settings.platforms.sweep_batch:
                await woken(self.wakeup, interval)
                self.wakeup.clear()

    async def sweep(self, now: datetime) -> int:
        """Claim due fetches and process each on its own; return how many were claimed."""
        claimed = await self._claim(now)
        if not claimed:
            return 0
        async with httpx.AsyncClient() as client:
            for item in claimed:
                try:
                    await self._process(client, item, now)
                except Exception as error:  # one bad row must not stop the others
                    if unavailable(error):
                        raise  # nor is it the row's fault: its lease runs out, then it is retried
                    log.exception("pending fetch %s failed", item.fetch.id)
                    await self._reschedule(item, f"internal: {error.__class__.__name__}", now)
        return len(claimed)

    async def _claim(self, now: datetime) -> list[Claimed]:
        lease = now + timedelta(seconds=self.settings.platforms.lease_s)
        token = uuid4()
        async with self.sessions.begin() as session:
            rows = (
                await session.scalars(
                    select(PlatformFetch)
                    .where(
                        PlatformFetch.due_at <= now,
                        or_(
                            PlatformFetch.locked_until.is_(None), PlatformFetch.locked_until <= now
                        ),
                    )
                    .order_by(PlatformFetch.due_at)
                    .limit(self.settings.platforms.sweep_batch)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if rows:
                await session.execute(
                    update(fetches)
                    .where(among(session, fetches.c.id, [row.id for row in rows]))
                    .values(locked_until=lease, claim=token)
                )
        return [Claimed(row, token) for row in rows]

    async def _process(self, client: httpx.AsyncClient, item: Claimed, now: datetime) -> None:
        fetch, platforms = item.fetch, self.settings.platforms
        try:
            field_data = await fetch_field_data(client, platforms, fetch.platform_lead_id)
        except FetchFailed as failure:
            log.warning("meta lead %s not fetched: %s", fetch.platform_lead_id, failure.reason)
            await self._reschedule(item, failure.reason, now)
            return
        form = platforms.meta_forms.get(fetch.form_id or "")
        try:
            submission = submission_from(
                meta_answers(field_data),
                defaults=META_FIELDS,
                overrides=form.fields if form else {},
                source=(form.source if form and form.source else "meta"),
                region=getattr(self.settings.intake, "default_region", None),
            )
        except SubmissionInvalid as invalid:
            async with self.sessions.begin() as session:
                if await self._still_ours(session, item):
                    await mark_invalid(session, fetch, f"{invalid.field}: {invalid.detail}")
            return
        is_test = bool(form and form.test)  # Meta's testing tool sends no flag: the form says
        arrival = PlatformArrival("meta", fetch.platform_lead_id, fetch.form_id, is_test, {})
        async with self.sessions.begin() as session:
            if not await self._still_ours(session, item):
                return  # the lease ran out and another sweep took the row
            raw = {"leadgen_id": fetch.platform_lead_id, "field_data": field_data}
            await store_platform_lead(
                session, arrival, submission, settings=self.settings, now=datetime.now(UTC), raw=raw
            )
            await session.execute(delete(fetches).where(fetches.c.id == fetch.id))
        self.on_commit()

    async def _still_ours(self, session: AsyncSession, item: Claimed) -> bool:
        row = await session.scalar(
            select(fetches.c.id)
            .where(fetches.c.id == item.fetch.id, fetches.c.claim == item.claim)
            .with_for_update()
        )
        return row is not None

    async def _reschedule(self, item: Claimed, reason: str, now: datetime) -> None:
        attempts = item.fetch.attempts + 1
        async with self.sessions.begin() as session:
            await session.execute(
                update(fetches)
                .where(fetches.c.id == item.fetch.id, fetches.c.claim == item.claim)
                .values(
                    attempts=attempts,
                    due_at=next_due(now, attempts, self.settings.platforms.retry_schedule_s),
                    locked_until=None,
                    claim=None,
                    last_error=reason[:500],
                )
            )
