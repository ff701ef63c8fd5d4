"""The group-commit writer on both databases: many requests, few transactions, none lost."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from services.intake.schemas import LeadSubmission
from services.intake.store import Arrival
from services.intake.writer import GroupCommitWriter
from shared.models import Inquiry, Lead, OutboxMessage
from shared.runtime import Runtime
from tests.support.common import Database, make_settings


@pytest.fixture
async def runtime(db: Database) -> AsyncIterator[Runtime]:
    runtime = Runtime.create(make_settings(db, intake={"writers": 2, "max_batch": 50}))
    yield runtime
    await runtime.close()


@pytest.fixture
def writer(runtime: Runtime) -> GroupCommitWriter:
    commits: list[int] = []
    writer = GroupCommitWriter(
        runtime.sessions, runtime.settings, spawn=runtime.spawn, on_commit=lambda: commits.append(1)
    )
    writer.commits = commits  # type: ignore[attr-defined]
    return writer


def arrival(email: str | None, **fields: object) -> Arrival:
    submission = LeadSubmission(email=email, phone=None if email else "+15550100", **fields)
    return Arrival(submission, datetime.now(UTC))


async def total(runtime: Runtime, model: type) -> int:
    async with runtime.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def test_concurrent_inquiries_share_transactions_and_each_is_stored_once(
    writer: GroupCommitWriter, runtime: Runtime
) -> None:
    emails = [f"p{i % 40}@example.com" for i in range(300)]  # 40 people, 7-8 inquiries each
    answers = await asyncio.gather(*(writer.submit(arrival(e)) for e in emails))
    assert await total(runtime, Inquiry) == 300
    assert await total(runtime, OutboxMessage) == 300
    assert await total(runtime, Lead) == 40
    lead_of: dict[str, set[str]] = {}
    for email, answer in zip(emails, answers, strict=True):
        lead_of.setdefault(email, set()).add(str(answer.lead_id))
    assert all(len(ids) == 1 for ids in lead_of.values())
    created = Counter(email for email, a in zip(emails, answers, strict=True) if a.new_lead)
    assert created == Counter(dict.fromkeys(set(emails), 1))
    assert len(writer.commits) < 300  # type: ignore[attr-defined]


async def test_a_failing_inquiry_fails_alone_and_the_rest_are_committed(
    writer: GroupCommitWriter, runtime: Runtime
) -> None:
    first = arrival("taken@example.com")
    await writer.submit(first)
    clash = Arrival(arrival("other@example.com").submission, first.received_at, first.inquiry_id)
    others = [arrival(f"ok{i}@example.com") for i in range(20)]
    results = await asyncio.gather(
        *(writer.submit(a) for a in [*others[:10], clash, *others[10:]]), return_exceptions=True
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1 and isinstance(failures[0], IntegrityError)
    assert await total(runtime, Inquiry) == 21
    assert await total(runtime, OutboxMessage) == 21
    async with runtime.sessions() as session:
        emails = set(await session.scalars(select(Lead.email)))
    assert "other@example.com" not in emails  # nothing of the failed one was half-applied


async def test_later_facts_fill_in_within_one_batch(
    writer: GroupCommitWriter, runtime: Runtime
) -> None:
    await asyncio.gather(
        writer.submit(arrival("ada@example.com", first_name="Ada")),
        writer.submit(arrival("ada@example.com", company="Analytical Engines")),
        writer.submit(arrival(None, first_name="Phone Only")),
    )
    async with runtime.sessions() as session:
        ada = (await session.scalars(select(Lead).where(Lead.email == "ada@example.com"))).one()
        assert (ada.first_name, ada.company) == ("Ada", "Analytical Engines")
    assert await total(runtime, Lead) == 2


@asynccontextmanager
async def lingering(
    db: Database, **intake: object
) -> AsyncIterator[tuple[GroupCommitWriter, Runtime, list[int]]]:
    """A writer with these intake settings, its runtime and the commits it made."""
    runtime = Runtime.create(make_settings(db, intake=intake))
    commits: list[int] = []
    writer = GroupCommitWriter(
        runtime.sessions, runtime.settings, spawn=runtime.spawn, on_commit=lambda: commits.append(1)
    )
    try:
        yield writer, runtime, commits
    finally:
        await runtime.close()


async def test_requests_arriving_one_after_another_share_a_transaction(db: Database) -> None:
    """Not concurrent, but at a steady pace (one every 30 ms): the first is written at once (no
    rate known yet); then the writer waits for each next arrival that the pace says is due, up to
    ``linger_ms`` (1 s) after a batch's first, so they share transactions."""
    async with lingering(db, writers=2, max_batch=4, linger_ms=1000) as (writer, runtime, commits):
        await writer.submit(arrival("first@example.com"))
        assert len(commits) == 1
        posted = []
        for index in range(12):
            posted.append(asyncio.create_task(writer.submit(arrival(f"p{index}@example.com"))))
            await asyncio.sleep(0.03)  # the arrivals' pace, which is what is tested
        await asyncio.gather(*posted)
        assert len(commits) <= 1 + 6  # 1 + 3 at four per batch; one per request without waiting
        assert await total(runtime, Inquiry) == 13


async def test_a_batch_stops_waiting_once_it_holds_linger_batch(db: Database) -> None:
    """A steady pace again (one every 30 ms), but a batch of ``linger_batch`` (3) goes without
    waiting out ``linger_ms`` (1 s): twelve arrivals make at least four transactions, where
    lingering would put them in one or two."""
    async with lingering(db, writers=2, max_batch=50, linger_ms=1000, linger_batch=3) as (
        writer,
        runtime,
        commits,
    ):
        await writer.submit(arrival("first@example.com"))
        posted = []
        for index in range(12):
            posted.append(asyncio.create_task(writer.submit(arrival(f"b{index}@example.com"))))
            await asyncio.sleep(0.03)  # the arrivals' pace, which is what is tested
        await asyncio.gather(*posted)
        assert len(commits) >= 1 + 4
        assert await total(runtime, Inquiry) == 13


async def test_a_closed_loop_is_not_held_back_by_the_linger(db: Database) -> None:
    """Clients that post again only once answered (a load generator, a retrying importer): after
    their burst nothing can arrive until the batch is answered, so it goes at once, although
    requests keep arriving round after round (``linger_ms`` 1 s)."""
    loop = asyncio.get_running_loop()
    async with lingering(db, writers=1, max_batch=50, linger_ms=1000) as (writer, _, commits):
        for round_ in range(3):
            started = loop.time()
            emails = [f"r{round_}c{index}@example.com" for index in range(10)]
            await asyncio.gather(*(writer.submit(arrival(email)) for email in emails))
            assert loop.time() - started < 0.5, f"round {round_} waited for the linger"
        assert len(commits) == 3


async def test_one_client_posting_one_at_a_time_is_not_held_back(db: Database) -> None:
    """One client waiting for each answer before its next post looks like a steady stream, but
    no other request can come: after two waits for nothing the writer stops waiting (for a
    second). Twenty such posts take about 0.2 s here; waiting each time for the next arrival,
    as the steady stream suggests, they took 10–14 s. The bound leaves room for a loaded
    machine (ten posts once took 0.8 s under a benchmark)."""
    loop = asyncio.get_running_loop()
    async with lingering(db, writers=2, max_batch=50, linger_ms=1000) as (writer, _, commits):
        started = loop.time()
        for index in range(20):
            await writer.submit(arrival(f"one{index}@example.com"))
        assert loop.time() - started < 2.0
        assert len(commits) == 20
