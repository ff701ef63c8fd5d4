"""Chaos in the production topology: a short ``make chaos`` (``bench.chaos``) in the suite.

``leadflow intake``, ``scoring``, ``webhooks``, ``sla-monitor`` and ``analytics`` as separate
processes on a PostgreSQL server of the run's own (``pg_server``: under ``CI=true`` missing server
binaries fail the run) and the embedded broker, a CRM receiver on 127.0.0.1 subscribed to every
lifecycle and SLA event. JSON, form and Google Ads leads are posted at 8/s for 25 s, with their
activities and outcomes, by clients that retry with the same key, while (seed 20,
``chaos_plan``) each process is killed once, the broker restarts empty, PostgreSQL restarts and
the CRM flaps twice (5xx, dropped connections). Then every accepted post must be stored once,
every input scored once, every qualified lead routed once within the reps' caps, every tier due
fired once, every lifecycle and SLA event delivered (once after dedupe by ``webhook-id``), nothing
pending or dead-lettered, the funnel accounting for every lead: lost 0, duplicated 0.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.common import Database
from tests.support.fault_run import fault_run
from tests.support.faults import chaos_plan
from tests.support.postgres_server import PostgresServer
from tests.support.topology import running_topology

pytestmark = pytest.mark.e2e

SECONDS, RATE, SEED = 25.0, 8.0, 20


@pytest.mark.timeout(300)
async def test_the_processes_survive_chaos_losing_and_duplicating_nothing(
    outage_db: Database, pg_server: PostgresServer, tmp_path: Path
) -> None:
    async with running_topology(pg_server, outage_db.url, tmp_path) as topology:
        run = await fault_run(
            topology,
            chaos_plan(SECONDS, SEED),
            seconds=SECONDS,
            rate=RATE,
            seed=SEED,
            settle_within=45,
        )

    print(run.text())  # shown with -s, and in the report of a failure
    assert run.ok, f"{run.text()}\nlogs: {tmp_path}"
    assert (run.lost, run.duplicated) == (0, 0), run.text()
