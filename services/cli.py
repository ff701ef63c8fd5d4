"""The ``leadflow`` command: one subcommand per service, plus ``dev``, ``db`` and ``events``."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from services.analytics.cli import funnel_app, goals_app, write_review
from services.intake.cli import keys_app
from services.routing.cli import owners_app, routing_rules_app
from services.scoring.cli import rules_app
from services.settings import LeadflowSettings, load_settings
from services.sla_monitor.cli import sla_app, sla_policies_app
from services.webhooks.cli import subscriptions_app
from shared.config import DatabaseSettings, SettingsError, unknown_variables
from shared.logs import configure_logging

app = typer.Typer(
    help="Leadflow: lead intake, qualification, routing and SLA clocks.",
    no_args_is_help=True,
    add_completion=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
events_app = typer.Typer(help="Event types and their JSON Schemas.", no_args_is_help=True)
report_app = typer.Typer(help="Reports written to files.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(funnel_app, name="funnel")
app.add_typer(goals_app, name="goals")
app.add_typer(report_app, name="report")
app.add_typer(events_app, name="events")
app.add_typer(rules_app, name="rules")
app.add_typer(owners_app, name="owners")
app.add_typer(routing_rules_app, name="routing-rules")
app.add_typer(sla_policies_app, name="sla-policies")
app.add_typer(sla_app, name="sla")
app.add_typer(keys_app, name="keys")
app.add_typer(subscriptions_app, name="subscriptions")


def _settings(**overrides: object) -> LeadflowSettings:
    try:
        settings = load_settings(**overrides)
    except SettingsError as error:
        typer.echo(f"leadflow: {error}", err=True)
        raise typer.Exit(2) from None
    configure_logging(settings.log_level, json=settings.log_json)
    return settings


def run_loop(main: Coroutine[Any, Any, int]) -> int:
    """Run a service on uvloop (uvicorn[standard] brings it), as uvicorn itself would."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def _run(main: object) -> None:
    code = run_loop(main)  # type: ignore[arg-type]
    raise typer.Exit(code or 0)


@app.command()
def intake() -> None:
    """Run the intake HTTP API and its outbox relay.

    With LEADFLOW_OUTBOX__RELAY_IN_PROCESS=false the relay runs apart (`leadflow relay`)."""
    from services.processes import run_intake

    _run(run_intake(_settings()))


@app.command()
def scoring() -> None:
    """Run the scoring consumer, its outbox relay and its health endpoints.

    With LEADFLOW_OUTBOX__RELAY_IN_PROCESS=false the relay runs apart (`leadflow relay`)."""
    from services.processes import run_scoring

    _run(run_scoring(_settings()))


@app.command()
def webhooks() -> None:
    """Run the webhook dispatcher: consume lifecycle and SLA events, deliver them to CRMs."""
    from services.processes import run_webhooks

    _run(run_webhooks(_settings()))


@app.command("sla-monitor")
def sla_monitor() -> None:
    """Run the SLA monitor: clocks from lifecycle events, the sweep that fires their tiers, the
    email notifier and a relay (health and metrics on its port)."""
    from services.processes import run_sla_monitor

    _run(run_sla_monitor(_settings()))


@app.command()
def analytics() -> None:
    """Run the analytics consumer: the funnel's lines from intake and lifecycle events (health
    and metrics on its port)."""
    from services.processes import run_analytics

    _run(run_analytics(_settings()))


@app.command()
def relay() -> None:
    """Run only the outbox relay: publish every service's events to the broker, for services
    run with LEADFLOW_OUTBOX__RELAY_IN_PROCESS=false (health and metrics on its port)."""
    from services.processes import run_relay

    _run(run_relay(_settings()))


@app.command()
def broker(
    port: Annotated[int, typer.Option(help="The port to listen on", min=1, max=65535)] = 9092,
    host: Annotated[
        str, typer.Option(help="The address to listen on, and that clients are told to use")
    ] = "127.0.0.1",
) -> None:
    """Run the embedded Kafka-compatible broker (tansu, memory storage) in the foreground until
    SIGTERM or Ctrl-C, for the services as separate processes on one machine. It keeps nothing
    across a restart, and has no TLS or authentication: Apache Kafka is the production broker."""
    from shared.broker import EmbeddedBroker, run_in_foreground

    embedded = EmbeddedBroker(port, host=host, inherit_output=True)

    def started() -> None:
        typer.echo(
            f"embedded broker listening on {embedded.bootstrap_servers} (memory storage); "
            f"point the services at it: LEADFLOW_KAFKA__BOOTSTRAP_SERVERS="
            f"{embedded.bootstrap_servers} LEADFLOW_KAFKA__IDEMPOTENCE=false",
        )

    try:
        code = run_in_foreground(embedded, started=started)
    except (RuntimeError, TimeoutError) as error:  # it could not start: the port taken, …
        typer.echo(f"leadflow: broker: {error}", err=True)
        raise typer.Exit(1) from None
    raise typer.Exit(code)


@report_app.command("monthly")
def report_monthly(
    month: Annotated[str, typer.Option(help="The month, YYYY-MM")],
    out: Annotated[Path, typer.Option(help="The folder to write to")] = Path("."),
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """The monthly source review of MONTH: review-MONTH.html and review-MONTH.zip (the page
    and its tables as CSV). `leadflow analytics` writes it by itself each month when
    LEADFLOW_ANALYTICS__REVIEW_DIR is set."""
    from services.sla_monitor.analytics import attainment_by_source

    write_review(month, out, attainment_by_source, as_json=as_json)


@app.command()
def dev(
    port: Annotated[int, typer.Option(help="HTTP port for the API")] = 8000,
    data_dir: Annotated[Path, typer.Option(help="Where the SQLite file and logs live")] = Path(
        ".leadflow"
    ),
    database_url: Annotated[
        str | None, typer.Option(help="Default: SQLite in the data dir; or a PostgreSQL URL")
    ] = None,
) -> None:
    """Everything in one process: embedded broker, database, all services."""
    from services.dev import run_dev

    base = _settings()
    data_dir = data_dir.resolve()
    if database_url is None:
        database_url = (
            base.db.url
            if "db" in base.model_fields_set
            else f"sqlite:///{data_dir / 'leadflow.db'}"
        )
    try:
        db = DatabaseSettings(**{**base.db.model_dump(), "url": database_url})
    except ValidationError as error:
        typer.echo(f"leadflow: --database-url: {error.errors()[0]['msg']}", err=True)
        raise typer.Exit(2) from None
    http = base.http.model_copy(update={"intake_port": port})
    settings = base.model_copy(update={"db": db, "http": http, "data_dir": data_dir})
    raise typer.Exit(run_loop(run_dev(settings)))


@db_app.command("upgrade")
def db_upgrade(revision: str = "heads") -> None:
    """Apply the migrations up to REVISION (default: the newest of every branch)."""
    from shared.db import make_engine
    from shared.migrate import upgrade

    settings = _settings()

    async def main() -> None:
        engine = make_engine(settings.db)
        try:
            await upgrade(engine, revision)
        finally:
            await engine.dispose()

    asyncio.run(main())
    typer.echo(f"database at revision {revision}")


@events_app.command("schemas")
def events_schemas(
    out: Annotated[Path, typer.Option(help="Folder for <type>.json")] = Path("docs/schemas"),
) -> None:
    """Write the JSON Schema of every event type."""
    from shared.events import write_json_schemas

    for path in write_json_schemas(out):
        typer.echo(path)


def main() -> None:
    """The ``leadflow`` command. A ``LEADFLOW_…`` variable that names no setting of any service is
    refused first, whichever command runs (a typo would otherwise be ignored)."""
    unknown = unknown_variables(os.environ, LeadflowSettings)
    if unknown:
        typer.echo(
            "leadflow: unknown settings: " + ", ".join(unknown) + " (see docs/configuration.md)",
            err=True,
        )
        raise SystemExit(2)
    app()
