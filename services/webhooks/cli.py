"""``leadflow subscriptions …``: CRM webhook endpoints from the server's shell, on the database.

The same service functions as the API. ``--json`` prints what the API would answer.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar
from uuid import UUID

import typer
import yaml
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.webhooks import store
from services.webhooks.crm import fields
from services.webhooks.schemas import SubscriptionIn, SubscriptionPatch
from services.webhooks.settings import WebhooksConfig
from shared.cli import stdout, with_sessions
from shared.config import Settings
from shared.problems import Problem

subscriptions_app = typer.Typer(
    help="Webhook subscriptions: endpoints, secrets, delivery log, replay.", no_args_is_help=True
)
T = TypeVar("T")
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output")]
REPLAY_CHUNK = 500


class BodyFormat(StrEnum):
    cloudevents = "cloudevents"
    slack = "slack"


FORMAT_HELP = "cloudevents: the event; slack: a chat message for an incoming webhook"
ConsentOption = Annotated[
    list[str] | None,
    typer.Option(
        "--consent-flag",
        help="Consent that lets the lead's personal fields through: a checkbox flag, or "
        "communication:<type id> (repeatable; default: LEADFLOW_WEBHOOKS__CONSENT_FLAGS)",
    ),
]
SettingsOption = Annotated[
    Path | None,
    typer.Option(
        "--settings",
        exists=True,
        dir_okay=False,
        help="The CRM's settings, YAML or JSON (docs/crm.md: owners, properties/fields, stages)",
    ),
]
CredentialsOption = Annotated[
    Path | None,
    typer.Option(
        "--credentials",
        exists=True,
        dir_okay=False,
        help="YAML or JSON with the CRM's secrets (HubSpot: token, app_secret; Salesforce: "
        "client_secret); kept off the command line so they stay out of shell history",
    ),
]


class CrmKind(StrEnum):
    hubspot = "hubspot"
    salesforce = "salesforce"


def _document(path: Path | None, option: str) -> Any:
    """A YAML (or JSON) file's content, or a usage error naming the option."""
    if path is None:
        return None
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        typer.echo(f"leadflow: --{option}: {error}", err=True)
        raise typer.Exit(2) from None


def _id(header: str) -> Column:
    """A column of ids, which are copied into the next command: never cut short or wrapped."""
    return Column(header, no_wrap=True, min_width=36)


def _folded(header: str) -> Column:
    """A column whose long values break across lines instead of ending in an ellipsis."""
    return Column(header, overflow="fold")


def _run(work: Callable[[async_sessionmaker[AsyncSession], WebhooksConfig], Awaitable[T]]) -> T:
    return with_sessions(work, settings=WebhooksConfig, failures={Problem: _problem})


def _problem(problem: Problem) -> list[str]:
    where = f" ({problem.extra['field']})" if "field" in problem.extra else ""
    return [f"{problem.title}{where}: {problem.detail}"]


def _print(value: BaseModel | list[Any], as_json: bool, table: Callable[[], Table]) -> None:
    if as_json:
        data = (
            [v.model_dump(mode="json") for v in value]
            if isinstance(value, list)
            else value.model_dump(mode="json")
        )
        typer.echo(json.dumps(data, indent=2))
    else:
        stdout().print(table())


OPTIONS = {
    "hubspot": "settings",
    "salesforce": "settings",
    "event_types": "event-type",
    "consent_flags": "consent-flag",
}
"""A body field → the option that gives it, where their names differ."""


def _model(cls: type[T], **values: Any) -> T:
    try:
        return cls(**values)
    except ValidationError as error:
        first = error.errors()[0]
        if not first["loc"]:  # a check of the whole: its message names the field
            typer.echo(f"leadflow: {first['msg']}", err=True)
            raise typer.Exit(2) from None
        field = str(first["loc"][0])
        option = OPTIONS.get(field, field.replace("_", "-"))
        typer.echo(f"leadflow: --{option}: {first['msg']}", err=True)
        raise typer.Exit(2) from None


@subscriptions_app.command("create")
def create(
    url: Annotated[str, typer.Argument(help="http(s) URL the events are POSTed to")],
    event_type: Annotated[
        list[str], typer.Option("--event-type", "-e", help="lead.mql, sla.*, * (repeatable)")
    ],
    filter_: Annotated[str | None, typer.Option("--filter", help="CEL expression")] = None,
    description: Annotated[str, typer.Option(help="What this endpoint is")] = "",
    format_: Annotated[BodyFormat, typer.Option("--format", help=FORMAT_HELP)] = (
        BodyFormat.cloudevents
    ),
    consent_flag: ConsentOption = None,
    as_json: JsonOption = False,
) -> None:
    """Subscribe an endpoint; prints the signing secret (shown once)."""
    body = _model(
        SubscriptionIn,
        url=url,
        event_types=event_type,
        filter=filter_,
        description=description,
        format=format_.value,
        consent_flags=consent_flag or None,
    )

    async def work(sessions: async_sessionmaker[AsyncSession], settings: WebhooksConfig) -> Any:
        async with sessions.begin() as session:
            return await store.create(
                session, body, settings=settings.webhooks, now=datetime.now(UTC)
            )

    created = _run(work)
    if as_json:
        typer.echo(created.model_dump_json(indent=2))
        return
    typer.echo(f"subscription {created.id}\nsecret {created.secret}  (shown once: keep it)")


@subscriptions_app.command("create-crm")
def create_crm(
    kind: Annotated[CrmKind, typer.Argument(help="The CRM")],
    settings_file: SettingsOption = None,
    credentials_file: CredentialsOption = None,
    description: Annotated[str, typer.Option(help="What this CRM is")] = "",
    consent_flag: ConsentOption = None,
    as_json: JsonOption = False,
) -> None:
    """Deliver lead.qualified to a CRM through its API (docs/crm.md), in batches."""
    body = _model(
        SubscriptionIn,
        kind=kind.value,
        description=description,
        consent_flags=consent_flag or None,
        credentials=_document(credentials_file, "credentials"),
        **{kind.value: _document(settings_file, "settings") or {}},
    )

    async def work(sessions: async_sessionmaker[AsyncSession], settings: WebhooksConfig) -> Any:
        async with sessions.begin() as session:
            return await store.create(
                session, body, settings=settings.webhooks, now=datetime.now(UTC)
            )

    created = _run(work)
    if as_json:
        payload = created.model_dump(mode="json", exclude={"secret"})
        typer.echo(json.dumps(payload, indent=2))
        return
    typer.echo(f"subscription {created.id} ({kind.value}: {created.url})")
    if created.inbound_path:
        typer.echo(f"HubSpot app webhooks go to <public URL>{created.inbound_path}")


@subscriptions_app.command("crm-fields")
def crm_fields(as_json: JsonOption = False) -> None:
    """The Leadflow fields a CRM mapping may name."""
    if as_json:
        typer.echo(json.dumps(fields.FIELDS, indent=2))
        return
    out = Table("Leadflow field", _folded("what it holds"))
    for name, what in fields.FIELDS.items():
        out.add_row(name, what)
    stdout().print(out)


@subscriptions_app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """Every subscription, with its health."""

    async def work(sessions: async_sessionmaker[AsyncSession], _settings: Settings) -> Any:
        async with sessions() as session:
            return await store.all_subscriptions(session)

    rows = _run(work)

    def table() -> Table:
        out = Table(
            _id("id"),
            _folded("url"),
            "event types",
            "format",
            "enabled",
            "failures",
            "paused until",
        )
        for s in rows:
            state = "yes" if s.enabled else f"no ({s.disabled_reason})"
            paused = f"{s.paused_until:%H:%M:%S}" if s.paused_until else ""
            out.add_row(
                str(s.id),
                s.url,
                ", ".join(s.event_types),
                s.format,
                state,
                str(s.consecutive_failures),
                paused,
            )
        return out

    _print(rows, as_json, table)


@subscriptions_app.command("show")
def show(subscription_id: UUID, as_json: JsonOption = False) -> None:
    """One subscription, with its health (never its secret)."""

    async def work(sessions: async_sessionmaker[AsyncSession], _settings: Settings) -> Any:
        async with sessions() as session:
            return store.view(await store.find(session, subscription_id))

    shown = _run(work)
    _print(shown, as_json, lambda: _detail(shown.model_dump()))


@subscriptions_app.command("update")
def update(
    subscription_id: UUID,
    url: Annotated[str | None, typer.Option(help="New target URL")] = None,
    event_type: Annotated[
        list[str] | None, typer.Option("--event-type", "-e", help="Replaces the list")
    ] = None,
    filter_: Annotated[str | None, typer.Option("--filter", help="'' removes it")] = None,
    description: Annotated[str | None, typer.Option()] = None,
    format_: Annotated[BodyFormat | None, typer.Option("--format", help=FORMAT_HELP)] = None,
    enable: Annotated[
        bool | None, typer.Option("--enable/--disable", help="Re-enable (closes the circuit)")
    ] = None,
    consent_flag: ConsentOption = None,
    default_consent: Annotated[
        bool, typer.Option("--default-consent", help="Back to the default consent flags")
    ] = False,
    settings_file: SettingsOption = None,
    credentials_file: CredentialsOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change a subscription; --enable brings back a disabled one."""
    values: dict[str, Any] = {}
    if consent_flag or default_consent:
        values["consent_flags"] = None if default_consent else consent_flag
    crm = _document(settings_file, "settings")
    if crm is not None:

        async def kind_of(sessions: async_sessionmaker[AsyncSession], _s: Settings) -> str:
            async with sessions() as session:
                return (await store.find(session, subscription_id)).kind

        kind = _run(kind_of)
        if kind not in {k.value for k in CrmKind}:
            typer.echo("leadflow: --settings: only for a CRM subscription", err=True)
            raise typer.Exit(2)
        values[kind] = crm
    patch = _model(
        SubscriptionPatch,
        url=url,
        event_types=event_type or None,
        filter=filter_,
        description=description,
        format=format_.value if format_ else None,
        enabled=enable,
        credentials=_document(credentials_file, "credentials"),
        **values,
    )

    async def work(sessions: async_sessionmaker[AsyncSession], settings: WebhooksConfig) -> Any:
        async with sessions.begin() as session:
            return await store.change(
                session, subscription_id, patch, settings=settings.webhooks, now=datetime.now(UTC)
            )

    changed = _run(work)
    _print(changed, as_json, lambda: _detail(changed.model_dump()))


@subscriptions_app.command("rotate-secret")
def rotate_secret(subscription_id: UUID, as_json: JsonOption = False) -> None:
    """A new signing secret; the old one keeps signing during the overlap."""

    async def work(sessions: async_sessionmaker[AsyncSession], settings: WebhooksConfig) -> Any:
        async with sessions.begin() as session:
            return await store.rotate_secret(
                session, subscription_id, settings=settings.webhooks, now=datetime.now(UTC)
            )

    rotated = _run(work)
    if as_json:
        typer.echo(rotated.model_dump_json(indent=2))
        return
    typer.echo(f"secret {rotated.secret}  (old secret valid until {rotated.previous_valid_until})")


@subscriptions_app.command("delete")
def delete(subscription_id: UUID) -> None:
    """Delete a subscription with its queue and log."""

    async def work(sessions: async_sessionmaker[AsyncSession], _settings: Settings) -> None:
        async with sessions.begin() as session:
            await store.remove(session, subscription_id)

    _run(work)
    typer.echo(f"deleted {subscription_id}")


class MessageStatus(StrEnum):
    pending = "pending"
    delivered = "delivered"
    exhausted = "exhausted"


@subscriptions_app.command("messages")
def messages(
    subscription_id: UUID,
    status: Annotated[
        MessageStatus | None, typer.Option(help="Only messages in this state")
    ] = None,
    lead: Annotated[str | None, typer.Option(help="Only this lead's messages")] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Created at or after (ISO time, UTC)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: JsonOption = False,
) -> None:
    """A subscription's messages, newest first: what is queued, delivered or exhausted."""

    async def work(sessions: async_sessionmaker[AsyncSession], _settings: Settings) -> Any:
        async with sessions() as session:
            return await store.list_messages(
                session,
                subscription_id,
                status=status.value if status else None,
                lead_id=lead,
                since=_utc(since),
                limit=limit,
            )

    rows = _run(work)

    def table() -> Table:
        out = Table("created", _id("message"), _folded("lead"), "event", "status", "tries", "last")
        for m in rows:
            last = f"{m.last_status or ''} {m.last_error or ''}".strip()
            out.add_row(
                f"{m.created_at:%Y-%m-%d %H:%M:%S}",
                str(m.id),
                m.lead_id,
                m.event_type,
                m.status,
                str(m.attempts),
                last,
            )
        return out

    _print(rows, as_json, table)


@subscriptions_app.command("log")
def log(
    subscription_id: Annotated[UUID | None, typer.Argument()] = None,
    lead: Annotated[str | None, typer.Option(help="Only this lead's deliveries")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    as_json: JsonOption = False,
) -> None:
    """Delivery attempts, newest first, of a subscription and/or a lead."""
    if subscription_id is None and lead is None:
        typer.echo("leadflow: name a subscription, a --lead, or both", err=True)
        raise typer.Exit(2)

    async def work(sessions: async_sessionmaker[AsyncSession], _settings: Settings) -> Any:
        async with sessions() as session:
            return await store.list_attempts(
                session, subscription_id=subscription_id, lead_id=lead, limit=limit
            )

    rows = _run(work)

    def table() -> Table:
        out = Table(
            "time", _id("message"), _folded("lead"), "event", "status", "ms", "outcome", "error"
        )
        for a in rows:
            out.add_row(
                f"{a.attempted_at:%Y-%m-%d %H:%M:%S}",
                str(a.message_id),
                a.lead_id,
                a.event_type,
                str(a.status_code or ""),
                f"{a.latency_ms:.0f}",
                a.outcome,
                a.error or "",
            )
        return out

    _print(rows, as_json, table)


@subscriptions_app.command("replay")
def replay(
    subscription_id: UUID,
    message: Annotated[UUID | None, typer.Option(help="Replay this one message")] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Replay what was exhausted since (ISO time, UTC)")
    ] = None,
    include_delivered: Annotated[
        bool, typer.Option(help="With --since: also what was delivered")
    ] = False,
) -> None:
    """Send messages again: one (--message) or everything since a time (--since)."""
    if (message is None) == (since is None):
        typer.echo("leadflow: give either --message or --since", err=True)
        raise typer.Exit(2)

    async def work(sessions: async_sessionmaker[AsyncSession], _settings: Settings) -> int:
        now = datetime.now(UTC)
        if message is not None:
            async with sessions.begin() as session:
                await store.replay_message(session, subscription_id, message, now=now)
            return 1
        moment = _utc(since)
        assert moment is not None
        async with sessions() as session:
            seqs = await store.replay_candidates(
                session, subscription_id, since=moment, include_delivered=include_delivered
            )
        return await _requeue_with_progress(sessions, seqs)

    count = _run(work)
    typer.echo(f"replaying {count} message(s)")


async def _requeue_with_progress(
    sessions: async_sessionmaker[AsyncSession], seqs: list[int]
) -> int:
    columns = (TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    done = 0
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task("replay", total=len(seqs))
        for start in range(0, len(seqs), REPLAY_CHUNK):
            chunk = seqs[start : start + REPLAY_CHUNK]
            async with sessions.begin() as session:
                done += await store.requeue(session, chunk, now=datetime.now(UTC))
            progress.advance(task, len(chunk))
    return done


def _utc(moment: datetime | None) -> datetime | None:
    """A time given without an offset is UTC."""
    return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment


def _detail(values: dict[str, Any]) -> Table:
    out = Table("field", "value")
    for key, value in values.items():
        out.add_row(key, str(value))
    return out
