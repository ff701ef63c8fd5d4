"""The notifier against a real SMTP server on 127.0.0.1, on SQLite and PostgreSQL: who is mailed,
what arrives, and how the mail server's failures reach the consumer (retry or dead letter)."""

from __future__ import annotations

import logging
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import insert

from services.sla_monitor.mailer import Mailer, MailRefused, MailUnavailable
from services.sla_monitor.notifier import Notifier, notifier_for, start_notifier
from services.sla_monitor.settings import sla_config
from shared.broker import EmbeddedBroker, free_port
from shared.config import Settings
from shared.consumer import is_transient
from shared.events import SlaMet, SlaMetData, SlaStarted, SlaStartedData
from shared.ids import new_id
from shared.kafka import ensure_topics, make_producer
from shared.models import Inquiry, Lead, LeadHistory, table_of
from shared.runtime import Runtime
from tests.support.common import Database, make_settings
from tests.support.smtp import SmtpServer, self_signed

NOW = datetime(2026, 11, 24, 14, 15, tzinfo=UTC)
OWNER = "ann@example.com"
PUBLIC_URL = "https://leadflow.example.com"
PASSWORD = "s3cret-smtp-password"


def settings_for(
    db: Database, *, port: int | None, broker: EmbeddedBroker | None = None, **smtp: Any
) -> Settings:
    """Settings for one test, its SMTP server at ``port`` (None: no host, mail is logged)."""
    server = {"host": "127.0.0.1" if port else "", "port": port or 587, "tls": "none"}
    server |= {"sender": "Leadflow <leadflow@example.com>", "timeout_s": 5}
    return make_settings(db, broker, smtp=server | smtp, http={"public_url": PUBLIC_URL})


async def add_lead(db: Database, **overrides: Any) -> UUID:
    """Ada, with two inquiries: the later received one's title counts (it is stored first)."""
    lead_id = new_id()
    values = {
        "id": lead_id,
        "email": f"ada.{lead_id.hex[:8]}@engines.example",
        "phone": "+442071234567",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "company": "Analytical Engines",
        "source": "webinar",
        "stage": "mql",
        "fit_grade": "A",
        "score": 87,
        "created_at": NOW,
        "updated_at": NOW,
    }
    async with db.sessions.begin() as session:
        await session.execute(insert(table_of(Lead)).values(values | overrides))
        for title, received in [("Head of R&D", NOW), ("Engineer", NOW - timedelta(days=30))]:
            inquiry = {"id": new_id(), "lead_id": lead_id, "source": "webinar"}
            inquiry |= {"received_at": received, "submission": {"title": title}}
            await session.execute(insert(table_of(Inquiry)).values(inquiry))
        for rules, at in [(["old-rule"], NOW - timedelta(days=30)), (["demo-request"], NOW)]:
            moved = {"id": new_id(), "lead_id": lead_id, "occurred_at": at, "kind": "lead.mql"}
            moved |= {"detail": {"from": "inquiry", "cause": "rules", "rules": rules}}
            await session.execute(insert(table_of(LeadHistory)).values(moved))
    return lead_id


def started(lead_id: UUID, notify: list[str]) -> SlaStarted:
    data = SlaStartedData(
        lead_id=lead_id,
        clock="first_response",
        policy="inbound-standard",
        owner_email=OWNER,
        team="inside",
        deadline=NOW + timedelta(minutes=15),
        notify=notify,
        started_at=NOW,
        target_s=900,
        calendar="berlin-office",
    )
    return SlaStarted.about_lead(lead_id, data, source="/sla-monitor", time=NOW)


async def notify(db: Database, notifier: Notifier, event: Any) -> None:
    async with db.sessions.begin() as session:
        await notifier(event, session=session, now=NOW)


async def test_the_owner_of_a_new_lead_gets_an_email_to_call_it(db: Database) -> None:
    lead_id = await add_lead(db)
    async with SmtpServer() as server:
        await notify(
            db, notifier_for(settings_for(db, port=server.port)), started(lead_id, [OWNER])
        )
        [mail] = await server.wait_for(1)
    assert mail.rcpt_tos == [OWNER] and mail.to == OWNER
    assert mail.mail_from == "leadflow@example.com"
    assert mail.subject == (
        "New lead for you: Ada Lovelace (Analytical Engines) — respond by 14:30 UTC"
    )
    for expected in [
        "Title:     Head of R&D",
        "Phone:     +442071234567",
        "Source:    webinar",
        "Qualified: fit grade A, score 87, rules: demo-request",
        "Deadline: 2026-11-24T14:30:00Z (in 15 min).",
        f"{PUBLIC_URL}/v1/leads/{lead_id}/explain",
    ]:
        assert expected in mail.body
    assert len(server.received) == 1


@pytest.mark.parametrize(
    "lead", [{"erased_at": NOW, "first_name": None, "phone": None}, {"is_test": True}, None]
)
async def test_an_erased_test_or_missing_lead_is_mailed_about_to_no_one(
    db: Database, lead: dict[str, Any] | None
) -> None:
    lead_id = await add_lead(db, **lead) if lead is not None else new_id()
    async with SmtpServer() as server:
        await notify(
            db, notifier_for(settings_for(db, port=server.port)), started(lead_id, [OWNER])
        )
    assert server.connections == 0 and server.received == []


async def test_only_events_that_name_someone_to_tell_are_mailed(db: Database) -> None:
    lead_id = await add_lead(db)
    met = SlaMetData(
        lead_id=lead_id,
        policy="inbound-standard",
        responded_at=NOW,
        response="call",
        working_time_s=60,
        elapsed_s=60,
        breached=False,
    )
    async with SmtpServer() as server:
        notifier = notifier_for(settings_for(db, port=server.port))
        await notify(db, notifier, SlaMet.about_lead(lead_id, met, source="/sla", time=NOW))
        await notify(db, notifier, started(lead_id, []))
    assert server.connections == 0


async def test_without_an_smtp_host_each_message_is_logged_and_none_sent(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    lead_id = await add_lead(db)
    settings = settings_for(db, port=None, username="leadflow", password=PASSWORD)
    caplog.set_level(logging.INFO, logger="services.sla_monitor.notifier")
    await notify(db, notifier_for(settings), started(lead_id, [OWNER, "boss@example.com"]))
    lines = [r.getMessage() for r in caplog.records if r.name == "services.sla_monitor.notifier"]
    assert lines == [
        f"smtp host not set; not sent to {to}: sla.started for lead {lead_id}"
        for to in [OWNER, "boss@example.com"]
    ]
    assert "Ada" not in caplog.text  # the lead's name stays out of the logs
    assert PASSWORD not in caplog.text


async def test_a_mail_server_that_is_down_is_an_outage_the_consumer_waits_out(
    db: Database,
) -> None:
    lead_id = await add_lead(db)
    closed = free_port()  # bound, then released: nothing listens there
    notifier = notifier_for(settings_for(db, port=closed))
    with pytest.raises(MailUnavailable, match=f"127.0.0.1:{closed}") as raised:
        await notify(db, notifier, started(lead_id, [OWNER]))
    assert is_transient(raised.value)


async def test_a_recipient_refused_for_good_is_dead_lettered_and_the_others_still_mailed(
    db: Database,
) -> None:
    lead_id = await add_lead(db)
    event = started(lead_id, ["gone@example.com", OWNER])
    async with SmtpServer(refuse={"gone@example.com": "550 5.1.1 No such user"}) as server:
        notifier = notifier_for(settings_for(db, port=server.port))
        for _attempt in range(2):  # the consumer tries again before it dead-letters
            with pytest.raises(MailRefused, match="gone@example.com refused: 550") as raised:
                await notify(db, notifier, event)
            assert not is_transient(raised.value)
    assert [m.rcpt_tos for m in server.received] == [[OWNER]]


async def test_a_recipient_refused_for_now_is_retried_without_mailing_the_others_again(
    db: Database,
) -> None:
    lead_id = await add_lead(db)
    event = started(lead_id, [OWNER, "busy@example.com"])
    async with SmtpServer(refuse={"busy@example.com": "452 4.2.2 Mailbox full"}) as server:
        notifier = notifier_for(settings_for(db, port=server.port))
        with pytest.raises(MailUnavailable, match="452") as raised:
            await notify(db, notifier, event)
        assert is_transient(raised.value)
        server.refuse.clear()
        await notify(db, notifier, event)
        mails = await server.wait_for(2)
    assert [m.rcpt_tos for m in mails] == [[OWNER], ["busy@example.com"]]
    assert len(server.received) == 2


async def test_starttls_and_a_login_when_the_server_requires_them(
    db: Database, tmp_path: Path
) -> None:
    server_tls, client_tls = self_signed(tmp_path)
    lead_id = await add_lead(db)
    async with SmtpServer(tls_context=server_tls, logins={"leadflow": PASSWORD}) as server:

        def mailer(tls_context: ssl.SSLContext | None = client_tls, **smtp: Any) -> Notifier:
            login = {"tls": "starttls", "username": "leadflow", "password": PASSWORD} | smtp
            config = sla_config(settings_for(db, port=server.port, **login))
            mailer = Mailer(config.smtp, tls_context=tls_context)
            return Notifier(mailer, sender=config.smtp.sender, public_url=PUBLIC_URL)

        # Each a setting to fix, not the message's fault: waited out, never dead-lettered.
        for wrong, answer in [
            (mailer(tls="none", username=""), "530"),  # the server wants TLS first
            (mailer(tls_context=None), "SSLCertVerificationError"),  # an untrusted certificate
            (mailer(password="wrong"), "535"),  # a wrong password
        ]:
            with pytest.raises(MailUnavailable, match=answer) as raised:
                await notify(db, wrong, started(lead_id, [OWNER]))
            assert is_transient(raised.value)
        await notify(db, mailer(), started(lead_id, [OWNER]))
        [mail] = await server.wait_for(1)
    assert mail.login == "leadflow" and mail.rcpt_tos == [OWNER]
    assert len(server.received) == 1


async def test_the_notifier_consumes_the_sla_topic(db: Database, broker: EmbeddedBroker) -> None:
    lead_id = await add_lead(db)
    async with SmtpServer() as server:
        settings = settings_for(db, port=server.port, broker=broker)
        await ensure_topics(settings.kafka, [settings.topics.sla])
        runtime = Runtime.create(settings)
        start_notifier(runtime)
        producer = make_producer(settings.kafka)
        await producer.start()
        try:
            event = started(lead_id, [OWNER])
            await producer.send_and_wait(
                settings.topics.sla, event.encode(), key=event.key.encode()
            )
            [mail] = await server.wait_for(1, within=60)
        finally:
            await producer.stop()
            await runtime.close()
    assert mail.to == OWNER and mail.subject.startswith("New lead for you: Ada Lovelace")
    assert "sla-notifier" in runtime.consumers
