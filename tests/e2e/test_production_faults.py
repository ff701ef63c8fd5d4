"""The production processes under faults: a short ``make chaos`` (``bench.chaos``) in the suite.

``leadflow intake``, ``scoring`` and ``webhooks`` as separate processes on a PostgreSQL server of
the run's own (``pg_server``: under ``CI=true`` missing server binaries fail the run) and the
embedded broker, a CRM receiver on 127.0.0.1. Leads are posted at 20/s for 15 s while
PostgreSQL refuses connections (57P03) and stops, intake is killed, the broker restarts empty,
and scoring and webhooks are killed together (``short_plan``). Every accepted lead must be
stored, scored once and delivered, in order per lead, nothing dead-lettered, no process
exiting on its own, and intake answering 503 (never 500) while the database is away.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.common import Database
from tests.support.fault_run import fault_run
from tests.support.faults import short_plan
from tests.support.postgres_server import PostgresServer
from tests.support.topology import running_topology

pytestmark = pytest.mark.e2e

SECONDS, RATE = 15.0, 20.0


@pytest.mark.timeout(240)
async def test_the_processes_survive_database_broker_and_process_faults_losing_nothing(
    outage_db: Database, pg_server: PostgresServer, tmp_path: Path
) -> None:
    async with running_topology(pg_server, outage_db.url, tmp_path) as topology:
        run = await fault_run(
            topology, short_plan(SECONDS), seconds=SECONDS, rate=RATE, drain_within=120
        )

    print(run.text())  # shown with -s, and in the report of a failure
    assert run.ok, f"{run.text()}\nlogs: {tmp_path}"
    assert run.statuses[503] > 0, f"the load never met the database outage\n{run.text()}"
