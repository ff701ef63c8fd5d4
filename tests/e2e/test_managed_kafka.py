"""A process against a cluster where Leadflow may not create topics
(``LEADFLOW_KAFKA__CREATE_TOPICS=false``): it stops at start-up, exit 1, naming the topics that
are missing and how to create them, rather than waiting for topics no one will make."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from uuid import uuid4

import pytest

from shared.broker import EmbeddedBroker, free_port
from tests.support.common import Database

pytestmark = pytest.mark.e2e


def test_a_service_stops_at_start_up_naming_the_missing_topics(
    broker: EmbeddedBroker, sqlite_database: Database, tmp_path: Path
) -> None:
    prefix = f"t{uuid4().hex[:10]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    env.update(
        LEADFLOW_DB__URL=sqlite_database.url,
        LEADFLOW_KAFKA__BOOTSTRAP_SERVERS=broker.bootstrap_servers,
        LEADFLOW_KAFKA__IDEMPOTENCE="false",
        LEADFLOW_KAFKA__CREATE_TOPICS="false",
        LEADFLOW_KAFKA__TOPIC_PARTITIONS=f'{{"{prefix}.intake": 12}}',
        LEADFLOW_TOPICS__PREFIX=prefix,
        LEADFLOW_AUTH__SECRET_KEYS='["sk_test"]',
        LEADFLOW_HTTP__SCORING_PORT=str(free_port()),
    )
    ended = subprocess.run(
        [sys.executable, "-m", "services", "scoring"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
    )
    output = ended.stdout + ended.stderr
    assert ended.returncode == 1, output
    assert "topics missing on the broker:" in output
    assert f"--topic {prefix}.intake --partitions 12" in output
    assert "LEADFLOW_KAFKA__CREATE_TOPICS" in output
