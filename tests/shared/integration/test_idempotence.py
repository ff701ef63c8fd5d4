"""The idempotent producer, on by default, against a broker that lacks it (the embedded one):
the process stops saying which setting to change, instead of retrying as if the broker were
down."""

from __future__ import annotations

import pytest

from services.settings import load_settings
from shared.broker import EmbeddedBroker
from shared.runtime import IdempotenceRefused, Runtime
from tests.support.common import Database


async def test_a_broker_without_init_producer_id_is_named_with_the_setting(
    broker: EmbeddedBroker, sqlite_database: Database
) -> None:
    settings = load_settings(
        db={"url": sqlite_database.url}, kafka={"bootstrap_servers": broker.bootstrap_servers}
    )
    assert settings.kafka.idempotence
    runtime = Runtime.create(settings)
    try:
        with pytest.raises(IdempotenceRefused, match="LEADFLOW_KAFKA__IDEMPOTENCE=false"):
            await runtime.connected_producer()
    finally:
        await runtime.engine.dispose()
