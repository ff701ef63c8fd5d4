"""``/v1/subscriptions`` through the intake app (ASGI), on both databases."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from uuid import UUID

import httpx
import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from standardwebhooks import Webhook

from services.api import create_app
from services.webhooks.models import Subscription
from shared.logs import QUIET_LIBRARIES, configure_logging
from shared.runtime import Runtime
from tests.support.common import Database, eventually
from tests.support.receiver import Receiver, Reply
from tests.support.webhooks import dispatching, emit, scored, webhook_settings

AUTH = {"Authorization": "Bearer sk_test"}


@pytest.fixture
async def api(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    runtime = Runtime(settings=webhook_settings(db), engine=db.engine, sessions=db.sessions)
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://leadflow") as client:
        yield client


async def _create(api: httpx.AsyncClient, **body: object) -> httpx.Response:
    return await api.post("/v1/subscriptions", json=body, headers=AUTH)


async def test_a_subscription_is_created_its_secret_shown_once(api: httpx.AsyncClient) -> None:
    response = await _create(
        api,
        url="http://127.0.0.1:9/hook",
        event_types=["lead.mql", "sla.*"],
        filter='data.segment == "enterprise"',
        description="CRM",
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["secret"].startswith("whsec_") and created["enabled"] is True
    assert response.headers["location"] == f"/v1/subscriptions/{created['id']}"
    shown = (await api.get(f"/v1/subscriptions/{created['id']}", headers=AUTH)).json()
    assert "secret" not in shown and shown["event_types"] == ["lead.mql", "sla.*"]
    listed = (await api.get("/v1/subscriptions", headers=AUTH)).json()
    assert [s["id"] for s in listed] == [created["id"]] and "secret" not in listed[0]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://127.0.0.1:9/", "event_types": ["Lead MQL"]}, "event_types"),
        ({"url": "http://127.0.0.1:9/", "event_types": []}, "event_types"),
        ({"url": "http://127.0.0.1:9/", "event_types": ["*"], "filter": "data.x =="}, "filter"),
        ({"url": "ftp://127.0.0.1/", "event_types": ["*"]}, "url"),
        ({"url": "http://10.0.0.1/", "event_types": ["*"]}, "url"),
        ({"url": "http://169.254.169.254/latest/meta-data", "event_types": ["*"]}, "url"),
        ({"url": "http://[::ffff:192.168.0.1]/", "event_types": ["*"]}, "url"),
        ({"url": "http://no-such-host.invalid/", "event_types": ["*"]}, "url"),
        ({"url": "http://127.0.0.1:9/", "event_types": ["sla.*"], "format": "teams"}, "format"),
    ],
)
async def test_bad_subscriptions_are_refused_naming_the_field(
    api: httpx.AsyncClient, body: dict, field: str
) -> None:
    response = await api.post("/v1/subscriptions", json=body, headers=AUTH)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in response.text
    assert (await api.get("/v1/subscriptions", headers=AUTH)).json() == []


async def test_the_body_format_is_chosen_shown_and_changed(api: httpx.AsyncClient) -> None:
    created = await _create(api, url="http://127.0.0.1:9/chat", event_types=["sla.*"])
    assert created.json()["format"] == "cloudevents"  # the default: the event itself
    path = f"/v1/subscriptions/{created.json()['id']}"
    changed = await api.patch(path, json={"format": "slack"}, headers=AUTH)
    assert changed.status_code == 200 and changed.json()["format"] == "slack"
    assert (await api.get(path, headers=AUTH)).json()["format"] == "slack"
    assert [s["format"] for s in (await api.get("/v1/subscriptions", headers=AUTH)).json()] == [
        "slack"
    ]
    refused = await api.patch(path, json={"format": "teams"}, headers=AUTH)
    assert refused.status_code == 422
    assert refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    assert problem["field"] == "format" and "'cloudevents' or 'slack'" in problem["detail"]
    assert (await api.get(path, headers=AUTH)).json()["format"] == "slack"


async def test_the_secret_key_is_required(api: httpx.AsyncClient) -> None:
    assert (await api.get("/v1/subscriptions")).status_code == 401
    bad = {"Authorization": "Bearer nope"}
    assert (await api.get("/v1/subscriptions", headers=bad)).status_code == 403


async def test_change_disable_enable_and_delete(api: httpx.AsyncClient) -> None:
    created = (await _create(api, url="http://127.0.0.1:9/", event_types=["*"])).json()
    path = f"/v1/subscriptions/{created['id']}"
    changed = await api.patch(
        path, json={"event_types": ["lead.*"], "enabled": False}, headers=AUTH
    )
    assert changed.status_code == 200
    assert changed.json()["event_types"] == ["lead.*"] and changed.json()["enabled"] is False
    assert changed.json()["disabled_reason"] == "disabled by an operator"
    enabled = (await api.patch(path, json={"enabled": True}, headers=AUTH)).json()
    assert enabled["enabled"] is True and enabled["disabled_reason"] is None
    refused = await api.patch(path, json={"url": "http://192.168.1.1/"}, headers=AUTH)
    assert refused.status_code == 422 and "url" in refused.text
    assert (await api.delete(path, headers=AUTH)).status_code == 204
    assert (await api.get(path, headers=AUTH)).status_code == 404


async def test_rotation_keeps_the_old_secret_signing_during_the_overlap(
    api: httpx.AsyncClient, db: Database
) -> None:
    settings = webhook_settings(db)
    async with Receiver() as receiver, dispatching(db, settings):
        created = (await _create(api, url=receiver.url(), event_types=["lead.*"])).json()
        rotated = await api.post(f"/v1/subscriptions/{created['id']}/rotate-secret", headers=AUTH)
        assert rotated.status_code == 200
        new = rotated.json()["secret"]
        until = datetime.fromisoformat(rotated.json()["previous_valid_until"])
        assert new != created["secret"] and until > datetime.now(UTC) + timedelta(hours=23)
        await emit(db, settings, scored())
        [request] = await eventually(lambda: receiver.received)
    for secret in (created["secret"], new):
        Webhook(secret).verify(request.body, request.headers)


async def test_log_per_subscription_and_per_lead_and_replay_since(
    api: httpx.AsyncClient, db: Database
) -> None:
    settings = webhook_settings(db, retry_schedule_s=[0])
    failing = True
    async with Receiver(lambda _r: Reply(500 if failing else 200)) as receiver:
        created = (await _create(api, url=receiver.url(), event_types=["lead.*"])).json()
        path = f"/v1/subscriptions/{created['id']}"
        events = [scored() for _ in range(3)]
        async with dispatching(db, settings):
            started = datetime.now(UTC)
            await emit(db, settings, *events)

            async def exhausted() -> list:
                got = (await api.get(f"{path}/messages?status=exhausted", headers=AUTH)).json()
                return got if len(got) == 3 else []

            await eventually(exhausted)
            log = (await api.get(f"{path}/attempts", headers=AUTH)).json()
            assert len(log) == 3 and {a["status_code"] for a in log} == {500}
            lead = events[0].subject
            per_lead = await api.get(f"/v1/subscriptions/attempts?lead_id={lead}", headers=AUTH)
            assert [a["lead_id"] for a in per_lead.json()] == [lead]
            failing = False
            replay = await api.post(
                f"{path}/replay", json={"since": started.isoformat()}, headers=AUTH
            )
            assert replay.json() == {"replayed": 3}

            async def delivered() -> list:
                got = (await api.get(f"{path}/messages?status=delivered", headers=AUTH)).json()
                return got if len(got) == 3 else []

            await eventually(delivered)
        assert len(receiver.received) == 6
        ids = [r.headers["webhook-id"] for r in receiver.received]
        assert sorted(set(ids)) == sorted(str(e.id) for e in events)


@pytest.fixture
def service_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """The services' own logging set up at DEBUG, captured; the logging as it was after."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    libraries = {name: logging.getLogger(name).level for name in QUIET_LIBRARIES}
    configure_logging("DEBUG")
    root.addHandler(caplog.handler)
    caplog.handler.setLevel(logging.DEBUG)
    yield caplog
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, was in libraries.items():
        logging.getLogger(name).setLevel(was)


async def test_secrets_stay_out_of_the_logs_at_debug(
    api: httpx.AsyncClient, db: Database, service_logs: pytest.LogCaptureFixture
) -> None:
    """Signing secrets, and a token in the target's query: creation, rotation, a retry and the
    endpoint's disabling, with every library's lines that the services let through."""
    settings = webhook_settings(db, retry_schedule_s=[0, 0])
    answers = iter([Reply(500, body=b"nope"), Reply(410)])
    async with Receiver(lambda _r: next(answers)) as receiver, dispatching(db, settings):
        url = receiver.url("/hook?token=crm-token-4711")
        created = (await _create(api, url=url, event_types=["lead.*"])).json()
        path = f"/v1/subscriptions/{created['id']}"
        rotated = (await api.post(f"{path}/rotate-secret", headers=AUTH)).json()
        await emit(db, settings, scored())

        async def disabled() -> bool:
            shown = (await api.get(path, headers=AUTH)).json()
            return shown["enabled"] is False

        await eventually(disabled)
    assert len(receiver.received) == 2
    text = "\n".join(logging.Formatter().format(r) for r in service_logs.records)
    assert "subscription" in text and "disabled" in text  # the capture saw the work
    for secret in (created["secret"], rotated["secret"]):
        assert secret.removeprefix("whsec_") not in text
    assert "crm-token-4711" not in text


async def test_a_database_error_does_not_carry_the_secret(
    api: httpx.AsyncClient, db: Database
) -> None:
    """An error's text is logged with its traceback: it names the statement, not its values."""
    created = (await _create(api, url="http://127.0.0.1:9/", event_types=["*"])).json()
    again = {"id": UUID(created["id"]), "url": "http://127.0.0.1:9/", "event_types": ["*"]}
    now = datetime.now(UTC)
    row = {**again, "secret": created["secret"], "created_at": now, "updated_at": now}
    with pytest.raises(IntegrityError) as refused:
        async with db.sessions.begin() as session:
            await session.execute(insert(Subscription).values(**row))
    assert "webhook_subscriptions" in str(refused.value)
    assert created["secret"] not in str(refused.value)
