"""The receiver in docs/webhooks.md, as a CRM integrator would copy it, served by uvicorn on
127.0.0.1 and fed by the dispatcher: it accepts what Leadflow signs, answers a redelivery as a
duplicate, and refuses a forged request."""

from __future__ import annotations

import asyncio
import re
import socket
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import httpx
import pytest
import uvicorn

from services.webhooks import store
from tests.support.common import Database, eventually
from tests.support.webhooks import (
    attempts,
    dispatching,
    emit,
    scored,
    subscribe,
    webhook_settings,
)
from tests.support.webhooks import messages as messages_of

DOC = Path(__file__).parents[3] / "docs" / "webhooks.md"


def _example() -> str:
    section = DOC.read_text().split("## A receiver to copy", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found, "docs/webhooks.md has no python block under 'A receiver to copy'"
    return found.group(1)


async def test_the_documented_receiver_verifies_and_dedupes(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = webhook_settings(db)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/hooks/leadflow"
    created = await subscribe(db, settings, url)
    monkeypatch.setenv("WEBHOOK_SECRET", created.secret)
    example = ModuleType("receiver_example")
    exec(compile(_example(), str(DOC), "exec"), example.__dict__)  # noqa: S102
    server = uvicorn.Server(uvicorn.Config(example.app, log_config=None, lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await eventually(lambda: server.started, within=10)
        async with dispatching(db, settings):
            await emit(db, settings, scored())
            await eventually(lambda: _excerpts(db, created.id, 1))
            [message] = await messages_of(db, created.id)
            async with db.sessions.begin() as session:
                await store.replay_message(session, created.id, message.id, now=datetime.now(UTC))
            excerpts = await eventually(lambda: _excerpts(db, created.id, 2))
        assert '"ok"' in excerpts[0] and '"duplicate"' in excerpts[1]
        assert example.seen == {message.event_id}  # the webhook-id: the event's id

        async with httpx.AsyncClient() as client:
            forged = await client.post(
                url,
                content=b'{"type": "lead.mql"}',
                headers={
                    "webhook-id": "msg_forged",
                    "webhook-timestamp": str(int(datetime.now(UTC).timestamp())),
                    "webhook-signature": "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                },
            )
        assert forged.status_code == 400 and "msg_forged" not in example.seen
    finally:
        server.should_exit = True
        await serving
        sock.close()


async def _excerpts(db: Database, subscription_id, count: int) -> list[str] | None:  # type: ignore[no-untyped-def]
    logged = await attempts(db, subscription_id)
    if len(logged) < count:
        return None
    assert all(a.status_code == 200 for a in logged), [(a.status_code, a.error) for a in logged]
    return [a.response_excerpt or "" for a in logged]
