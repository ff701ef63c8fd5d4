"""A PostgreSQL server that stops and starts under running services (``pg_server``, the test's
own): while it shuts down or starts up it refuses connections with SQLSTATE 57P03, then it
refuses them outright. Each part waits that out and goes on; nothing is lost or dead-lettered,
and HTTP answers 503 with ``Retry-After`` meanwhile."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID, uuid4

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select, text

from services.api import create_app
from services.intake.keys.store import create_key
from services.settings import load_settings
from shared.broker import EmbeddedBroker
from shared.consumer import EventConsumer
from shared.db import driver_connection, make_engine
from shared.events import Event
from shared.kafka import ensure_topics, make_producer
from shared.metrics import DEAD_LETTERED
from shared.models import Lead, ProcessedEvent
from shared.outages import sqlstate, unavailable
from shared.runtime import Runtime
from tests.support.common import Database, eventually, lead_received, make_settings
from tests.support.postgres_server import PostgresServer
from tests.support.receiver import Receiver
from tests.support.webhooks import dispatching, emit, scored, subscribe, webhook_settings

AUTH = {"Authorization": "Bearer sk_test"}


async def _failure(work: object) -> BaseException:
    try:
        await work  # type: ignore[misc]
    except Exception as error:
        return error
    raise AssertionError("it did not fail")


async def test_postgresql_stopping_or_starting_is_an_outage(
    outage_db: Database, pg_server: PostgresServer
) -> None:
    async def query() -> None:
        async with outage_db.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    held = await outage_db.engine.connect()
    await held.execute(text("SELECT 1"))
    async with pg_server.refusing():
        terminated = await _failure(held.execute(text("SELECT 1")))  # ended by the shutdown
        refused = await _failure(query())
    stopped = await _failure(query())
    await held.close()
    assert sqlstate(refused.orig) == "57P03"  # type: ignore[attr-defined]
    assert isinstance(stopped, OSError)
    assert unavailable(terminated) and unavailable(refused) and unavailable(stopped)


async def test_a_lost_connection_under_a_begin_sent_straight_to_asyncpg_is_an_outage(
    pg: Database,
) -> None:
    """``driver_connection`` sends BEGIN to asyncpg itself, where SQLAlchemy does not see it
    fail: the connection must be invalidated (not pooled again) and the error an outage."""
    async with pg.sessions() as session:
        connection = await session.connection()
        raw = await connection.get_raw_connection()
        await raw.driver_connection.close()  # lost, and SQLAlchemy does not know
        error = await _failure(driver_connection(session))
        assert connection.invalidated
    assert unavailable(error), repr(error)
    async with pg.sessions() as session:
        assert await session.scalar(text("SELECT 1")) == 1


async def test_a_bug_or_bad_data_is_not_an_outage(outage_db: Database) -> None:
    async with outage_db.engine.connect() as connection:
        for statement in ("SELECT 1/0", "SELEC 1", "SELECT * FROM no_such_table"):
            error = await _failure(connection.execute(text(statement)))
            assert not unavailable(error), statement
            await connection.rollback()


async def test_a_pool_with_no_connection_free_in_time_is_an_outage(
    outage_db: Database,
) -> None:
    pool = {"url": outage_db.url, "pool_size": 1, "max_overflow": 0, "pool_timeout_s": 0.1}
    runtime = Runtime.create(make_settings(outage_db, db=pool))
    try:
        async with runtime.engine.connect() as holding:
            await holding.execute(text("SELECT 1"))
            error = await _failure(runtime.engine.connect().start())
        assert unavailable(error), repr(error)
    finally:
        await runtime.close()


async def test_sqlite_locked_or_unopenable_is_an_outage_a_missing_table_is_not(
    tmp_path: Path,
) -> None:
    folder = tmp_path
    locked = make_engine(load_settings(db={"url": f"sqlite+aiosqlite:///{folder / 'a.db'}"}).db)
    unopenable = make_engine(load_settings(db={"url": f"sqlite+aiosqlite:///{folder}"}).db)
    try:
        async with locked.connect() as holder, locked.connect() as writer:
            await holder.execute(text("CREATE TABLE t (x INTEGER)"))
            await holder.commit()
            await writer.exec_driver_sql("PRAGMA busy_timeout=50")
            await writer.commit()
            await holder.execute(text("INSERT INTO t VALUES (1)"))  # holds the write lock
            busy = await _failure(writer.execute(text("INSERT INTO t VALUES (2)")))
            missing = await _failure(holder.execute(text("SELECT * FROM no_such_table")))
        cannot_open = await _failure(unopenable.connect().start())
    finally:
        await locked.dispose()
        await unopenable.dispose()
    assert unavailable(busy), repr(busy)
    assert unavailable(cannot_open), repr(cannot_open)
    assert not unavailable(missing), repr(missing)


async def test_intake_answers_503_while_the_database_is_away_then_202(
    outage_db: Database, pg_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Through the secret key and a public key with an origin (read by the CORS middleware and
    the key guard, outside the routes). The app raises nothing to the server (which would log a
    traceback for each): one warning line per 503."""
    runtime = Runtime.create(make_settings(outage_db))
    async with runtime.sessions.begin() as session:
        public, _ = await create_key(
            session, kind="public", origins=["https://www.example.com"], now=datetime.now(UTC)
        )
    browser = {"X-API-Key": public, "Origin": "https://www.example.com"}
    app = create_app(runtime)
    transport = httpx.ASGITransport(app=app)  # raises what the app raises to its server
    answers: list[int] = []
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:

            async def post(headers: dict[str, str]) -> httpx.Response:
                body = {"email": f"{uuid4().hex[:8]}@example.com", "company": "Acme"}
                response = await client.post("/v1/leads", json=body, headers=headers)
                answers.append(response.status_code)
                return response

            first = await post(AUTH)
            assert first.status_code == 202, first.text
            caplog.clear()
            async with pg_server.refusing():
                refused = [await post(AUTH), await post(browser)]
                reading = await client.get(f"/v1/leads/{first.json()['lead_id']}", headers=AUTH)
            stopped = await post(AUTH)
            warnings = [r for r in caplog.records if "503" in r.getMessage()]
            errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
            await asyncio.to_thread(pg_server.start)
            after = await post(AUTH)
            shown = await client.get(f"/v1/leads/{after.json()['lead_id']}", headers=AUTH)
    finally:
        await runtime.close()
    for response in [*refused, reading, stopped]:
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"] == "2"
        assert "retry" in response.json()["detail"]
    assert len(warnings) == 4 and not errors, [r.getMessage() for r in caplog.records]
    assert after.status_code == 202 and shown.status_code == 200
    assert answers == [202, 503, 503, 503, 202]


async def test_the_dispatcher_waits_out_the_outage_and_delivers(
    outage_db: Database, pg_server: PostgresServer
) -> None:
    settings = webhook_settings(outage_db)
    receiver = await Receiver().start()
    try:
        created = await subscribe(outage_db, settings, receiver.url(), ["lead.scored"])
        before = scored()
        await emit(outage_db, settings, before)
        async with dispatching(outage_db, settings):
            await eventually(lambda: receiver.count == 1)
            failed_claims = _Counting("webhooks: claim failed")
            async with pg_server.refusing():
                await eventually(lambda: failed_claims.count >= 3)
            await eventually(lambda: failed_claims.count >= 6)  # refused while stopped
            failed_claims.close()
            await asyncio.to_thread(pg_server.start)
            after = scored()
            await emit(outage_db, settings, after)
            await eventually(lambda: receiver.count == 2)
    finally:
        await receiver.stop()
    ids = [request.headers["webhook-id"] for request in receiver.received]
    assert len(ids) == 2 and created.id


class _Counting(logging.Handler):
    """Counts the log records whose message starts with ``prefix``."""

    def __init__(self, prefix: str) -> None:
        super().__init__(logging.WARNING)
        self.prefix, self.count = prefix, 0
        logging.getLogger().addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith(self.prefix):
            self.count += 1

    def close(self) -> None:
        logging.getLogger().removeHandler(self)
        super().close()


async def test_a_consumer_waits_out_the_outage_and_dead_letters_nothing(
    outage_db: Database, pg_server: PostgresServer, broker: EmbeddedBroker
) -> None:
    settings = make_settings(outage_db, broker)
    name = f"outage-{uuid4().hex[:8]}"
    applied: list[Event] = []

    async def handler(event: Event, **_: object) -> None:
        applied.append(event)

    topic = settings.topics.intake
    await ensure_topics(settings.kafka, [topic, settings.topics.dead_letter])
    producer: AIOKafkaProducer = make_producer(settings.kafka)
    await producer.start()
    consumer = EventConsumer(
        name=name,
        topics=[topic],
        handler=handler,
        sessions=outage_db.sessions,
        producer=producer,
        settings=settings,
    )

    def dead_letters() -> float:
        return float(DEAD_LETTERED.labels(name)._value.get())

    dead_before = dead_letters()
    retries = _Counting(f"{name}: ")
    task = asyncio.create_task(consumer.run())
    events = [lead_received() for _ in range(5)]
    try:
        await eventually(consumer.assigned.is_set)
        async with pg_server.refusing():
            for event in events:
                await producer.send_and_wait(topic, event.encode(), key=event.key.encode())
            # As long as a consumer that gives up would take to dead-letter them all.
            await eventually(lambda: retries.count >= 5 or dead_letters() > dead_before)
        await asyncio.to_thread(pg_server.start)
        await eventually(lambda: len(applied) >= len(events) or dead_letters() > dead_before)
    finally:
        retries.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await producer.stop()
    assert dead_letters() == dead_before
    assert sorted(e.id for e in applied) == sorted(e.id for e in events)  # each once
    async with outage_db.sessions() as session:
        claimed = select(func.count()).where(ProcessedEvent.consumer == name)
        assert await session.scalar(claimed) == len(events)


async def test_background_work_goes_on_after_the_outage(
    outage_db: Database, pg_server: PostgresServer, broker: EmbeddedBroker
) -> None:
    """The intake process's relay, fetch sweeper and pruner; the scoring process's consumers,
    pending router and queue sweep; the webhooks process's consumer and dispatcher: all in one
    runtime, which keeps every task and stays ready; a lead posted after the outage is scored."""
    from services.intake.platforms.api import start_fetch_sweeper
    from services.intake.pruning import start_idempotency_pruner
    from services.processes import start_scoring_with_routing
    from services.routing.main import start_routing
    from services.scoring.main import activate_sample_rules
    from services.webhooks.main import start_webhooks

    settings = make_settings(
        outage_db,
        broker,
        platforms={"sweep_interval_s": 0.05},
        intake={"idempotency_prune_interval_s": 0.05},
        webhooks={"poll_interval_ms": 20},
    )
    runtime = Runtime.create(settings)
    await activate_sample_rules(runtime)
    runtime.start_relay()
    start_fetch_sweeper(runtime)
    start_idempotency_pruner(runtime)
    start_scoring_with_routing(runtime)
    start_routing(runtime)
    start_webhooks(runtime)
    app = create_app(runtime)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://intake"
        ) as client:
            await eventually(lambda: _ready(client), within=60)
            async with pg_server.refusing():
                unready = (await client.get("/readyz")).json()
            await asyncio.to_thread(pg_server.start)
            await eventually(lambda: _ready(client), within=60)
            body = {"email": "ada@analytical.example", "company": "Analytical Engines"}
            posted = await client.post("/v1/leads", json=body, headers=AUTH)
            assert posted.status_code == 202, posted.text
            lead_id = posted.json()["lead_id"]
            await eventually(lambda: _scored(runtime, lead_id), within=60)
            assert runtime.stopped == {}
            assert not [t.get_name() for t in runtime.tasks if t.done()]
    finally:
        await runtime.close()
    assert unready["status"] == "unavailable" and unready["checks"]["database"] != "ok"


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200


async def _scored(runtime: Runtime, lead_id: str) -> bool:
    async with runtime.sessions() as session:
        scored_at = select(Lead.scored_at).where(Lead.id == UUID(lead_id))
        return await session.scalar(scored_at) is not None
