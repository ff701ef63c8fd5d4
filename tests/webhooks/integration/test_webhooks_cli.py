"""``leadflow subscriptions …`` against a real database and a real receiver, through CliRunner.

The tests are synchronous, as in the other CLI tests: each command runs its own event loop, as it
does from a shell. Where messages must be sent, the test runs the dispatcher and the receiver in a
loop of its own between commands.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from uuid import uuid4

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from services.cli import app
from services.webhooks.models import DeliveryAttempt
from shared.broker import free_port
from shared.config import Settings
from shared.db import make_engine, make_sessions
from shared.events import CloudEvent
from tests.support.common import Database, eventually
from tests.support.receiver import Receiver, Reply
from tests.support.webhooks import dispatching, emit, scored, webhook_settings


@pytest.fixture
def cli(db: Database, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("LEADFLOW_DB__URL", db.url)
    monkeypatch.setenv("LEADFLOW_WEBHOOKS__ALLOWED_NETWORKS", '["127.0.0.0/8"]')
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: tables show whole values
    return CliRunner()


def run(cli: CliRunner, *args: str, code: int = 0) -> str:
    result = cli.invoke(app, ["subscriptions", *args])
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    return result.stdout if code == 0 else result.stderr


def test_create_list_update_rotate_and_delete(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = json.loads(
        run(cli, "create", "http://127.0.0.1:9/hook", "-e", "lead.mql", "-e", "sla.*", "--json")
    )
    assert created["secret"].startswith("whsec_") and created["enabled"] is True
    sid = created["id"]
    human = run(cli, "create", "http://127.0.0.1:9/other", "-e", "*", "--description", "CRM")
    assert "secret whsec_" in human and "shown once" in human

    listed = {s["id"]: s for s in json.loads(run(cli, "list", "--json"))}
    assert len(listed) == 2 and "secret" not in listed[sid]
    assert listed[sid]["event_types"] == ["lead.mql", "sla.*"]
    assert "http://127.0.0.1:9/other" in run(cli, "list")
    shown = json.loads(run(cli, "show", sid, "--json"))
    assert shown == listed[sid] and "secret" not in shown
    assert "lead.mql" in run(cli, "show", sid) and "whsec_" not in run(cli, "show", sid)
    monkeypatch.setenv("COLUMNS", "80")
    assert sid in run(cli, "list")  # an id is never cut short, even in a narrow terminal

    changed = json.loads(run(cli, "update", sid, "--disable", "-e", "lead.*", "--json"))
    assert changed["enabled"] is False and changed["event_types"] == ["lead.*"]
    assert changed["disabled_reason"] == "disabled by an operator"
    assert json.loads(run(cli, "update", sid, "--enable", "--json"))["enabled"] is True

    rotated = json.loads(run(cli, "rotate-secret", sid, "--json"))
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    assert datetime.fromisoformat(rotated["previous_valid_until"]) > datetime.now(UTC)

    assert run(cli, "delete", sid) == f"deleted {sid}\n"
    assert [s["id"] for s in json.loads(run(cli, "list", "--json"))] != [sid]
    assert len(json.loads(run(cli, "list", "--json"))) == 1


def test_a_chat_subscription_with_format_slack(cli: CliRunner) -> None:
    created = json.loads(
        run(cli, "create", "http://127.0.0.1:9/chat", "-e", "sla.*", "--format", "slack", "--json")
    )
    assert created["format"] == "slack"
    sid = created["id"]
    assert json.loads(run(cli, "list", "--json"))[0]["format"] == "slack"
    assert "slack" in run(cli, "list") and "format" in run(cli, "list")
    assert json.loads(run(cli, "show", sid, "--json"))["format"] == "slack"
    changed = json.loads(run(cli, "update", sid, "--format", "cloudevents", "--json"))
    assert changed["format"] == "cloudevents"
    assert "'teams' is not one of" in run(cli, "update", sid, "--format", "teams", code=2)
    assert json.loads(run(cli, "show", sid, "--json"))["format"] == "cloudevents"


def test_bad_input_is_refused_naming_the_option_and_changes_nothing(cli: CliRunner) -> None:
    assert "--event-type" in run(cli, "create", "http://127.0.0.1:9/", "-e", "Lead MQL", code=2)
    bad_filter = ("create", "http://127.0.0.1:9/", "-e", "*", "--filter", "data.x ==")
    assert "--filter: Value error, not a valid CEL expression" in run(cli, *bad_filter, code=2)
    assert "(url)" in run(cli, "create", "http://10.0.0.1/", "-e", "*", code=1)
    assert "(url)" in run(cli, "create", "http://169.254.169.254/latest", "-e", "*", code=1)
    assert json.loads(run(cli, "list", "--json")) == []

    missing = str(uuid4())
    assert "Not Found" in run(cli, "update", missing, "--disable", code=1)
    assert "name a subscription" in run(cli, "log", code=2)
    assert "Not Found" in run(cli, "messages", missing, code=1)
    assert "Not Found" in run(cli, "show", missing, code=1)
    assert "'bogus' is not one of" in run(cli, "messages", missing, "--status", "bogus", code=2)
    assert "either --message or --since" in run(cli, "replay", missing, code=2)
    both = ("replay", missing, "--message", missing, "--since", "2026-01-01T00:00:00")
    assert "either --message or --since" in run(cli, *both, code=2)


async def _dispatch(
    db: Database, settings: Settings, receiver: Receiver, port: int, total: int, *events: CloudEvent
) -> None:
    """Record ``events`` as the consumer does, then serve and dispatch until ``total`` attempts
    in all are logged (settled). The test's fixtures live in another event loop: this one gets
    an engine of its own on the same database."""
    engine = make_engine(settings.db)
    here = Database(kind=db.kind, url=db.url, engine=engine, sessions=make_sessions(engine))
    await receiver.start(port)
    try:
        await emit(here, settings, *events)
        async with dispatching(here, settings):
            await eventually(lambda: _logged(here, total))
    finally:
        await receiver.stop()
        await engine.dispose()


async def _logged(db: Database, total: int) -> bool:
    async with db.sessions() as session:
        return await session.scalar(select(func.count()).select_from(DeliveryAttempt)) == total


def test_log_and_replay_with_a_progress_bar(cli: CliRunner, db: Database) -> None:
    settings = webhook_settings(db, retry_schedule_s=[0])
    answer = 500
    receiver = Receiver(lambda _request: Reply(answer))
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    sid = json.loads(run(cli, "create", url, "-e", "lead.*", "--json"))["id"]
    since = datetime.now(UTC).replace(tzinfo=None).isoformat()  # naive: read as UTC
    events = [scored() for _ in range(3)]
    asyncio.run(_dispatch(db, settings, receiver, port, 3, *events))

    log = json.loads(run(cli, "log", sid, "--json"))
    assert len(log) == 3 and {a["status_code"] for a in log} == {500}
    exhausted = json.loads(run(cli, "messages", sid, "--status", "exhausted", "--json"))
    assert sorted(m["event_id"] for m in exhausted) == sorted(str(e.id) for e in events)
    assert {(m["attempts"], m["last_status"]) for m in exhausted} == {(1, 500)}
    assert json.loads(run(cli, "messages", sid, "--status", "pending", "--json")) == []
    assert exhausted[0]["id"] in run(cli, "messages", sid)
    lead = str(events[0].subject)
    [only] = json.loads(run(cli, "log", "--lead", lead, "--json"))
    assert only["lead_id"] == lead
    assert only["message_id"] in run(cli, "log", sid, "--limit", "3")

    result = cli.invoke(app, ["subscriptions", "replay", sid, "--since", since])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert result.stdout == "replaying 3 message(s)\n"
    assert "replay" in result.stderr and "3/3" in result.stderr  # the progress bar, on stderr
    answer = 200
    asyncio.run(_dispatch(db, settings, receiver, port, 6))
    again = [r.headers["webhook-id"] for r in receiver.received[3:]]
    assert sorted(again) == sorted(str(e.id) for e in events)

    assert run(cli, "replay", sid, "--message", only["message_id"]) == "replaying 1 message(s)\n"
    assert "still queued" in run(cli, "replay", sid, "--message", only["message_id"], code=1)
    asyncio.run(_dispatch(db, settings, receiver, port, 7))
    assert receiver.received[6].headers["webhook-id"] == str(events[0].id)
    statuses = sorted(a["status_code"] for a in json.loads(run(cli, "log", sid, "--json")))
    assert statuses == [200] * 4 + [500] * 3
    delivered = json.loads(run(cli, "messages", sid, "--status", "delivered", "--json"))
    assert len(delivered) == 3 and {m["last_status"] for m in delivered} == {200}
