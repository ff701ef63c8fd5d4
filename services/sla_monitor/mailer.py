"""Hands composed emails to the SMTP server (``LEADFLOW_SMTP__…``), one connection per message.

Failures come in two kinds, the same split the consumer makes (``shared.consumer.is_transient``):

- ``MailUnavailable`` (a ``ConnectionError``, so transient): the server cannot be reached or is
  too slow, answers 4xx ("try again later"), or refuses our own login, sender or TLS upgrade. None
  of that is the message's fault, so the consumer retries it until it passes, dead-lettering
  nothing (a wrong password is a setting to fix; its notifications wait for it).
- ``MailRefused``: the server refused a recipient or the message itself with a 5xx. Retrying
  cannot help; after its attempts the event goes to the dead-letter topic.

The consumer retries a whole batch, so an event's messages may be handed over again after some
of them were accepted. The mailer remembers the ``Message-ID`` of what the server accepted
(``messages`` derives it from the event and the recipient) and skips those, in this process: a
restart forgets, and the delivery is then at least once.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterable
from email.message import EmailMessage
from typing import Any

import aiosmtplib

from services.sla_monitor.settings import SmtpSettings

log = logging.getLogger(__name__)
SMTP_ERRORS = (aiosmtplib.SMTPException, OSError, ValueError)
"""What sending can raise: the server's answers, the network's failures (``OSError`` includes
``TimeoutError`` and ``ssl.SSLError``) and addresses that cannot be encoded (``ValueError``)."""
REMEMBERED = 10_000
"""Accepted messages remembered, to skip when handed over again."""


class MailUnavailable(ConnectionError):
    """The mail server cannot take the message now; a retry later will do."""


class MailRefused(Exception):
    """The mail server refused a recipient or the message for good (5xx)."""


class Mailer:
    def __init__(self, smtp: SmtpSettings, *, tls_context: ssl.SSLContext | None = None) -> None:
        """``tls_context``: to trust a server's certificate other than through the system's
        certificate authorities (a private CA)."""
        self.smtp = smtp
        self.tls_context = tls_context
        self._accepted: dict[str, None] = {}

    @property
    def configured(self) -> bool:
        """A server is set (``smtp.host``); without one the caller says whom it would tell."""
        return bool(self.smtp.host)

    async def send(self, messages: Iterable[EmailMessage]) -> None:
        """Hand each message to the server (``configured`` only). Raises ``MailUnavailable`` at
        the first that cannot go now (the rest wait for the retry), ``MailRefused`` after trying
        them all if the server refused any for good (the others were sent)."""
        if not self.configured:
            raise ValueError("no SMTP host is set: nothing can be sent")
        refused: list[str] = []
        for message in messages:
            if str(message["Message-ID"]) in self._accepted:
                log.info("already sent to %s: %s", message["To"], message["Message-ID"])
            else:
                try:
                    await self._deliver(message)
                except MailRefused as error:
                    refused.append(str(error))
        if refused:
            raise MailRefused("; ".join(refused))

    async def _deliver(self, message: EmailMessage) -> None:
        try:
            await aiosmtplib.send(message, **self._options())
        except SMTP_ERRORS as error:
            raise self._classified(error, message) from error
        self._accepted[str(message["Message-ID"])] = None
        if len(self._accepted) > REMEMBERED:
            del self._accepted[next(iter(self._accepted))]

    def _options(self) -> dict[str, Any]:
        smtp = self.smtp
        return {
            "hostname": smtp.host,
            "port": smtp.port,
            "username": smtp.username or None,
            "password": smtp.password.get_secret_value() if smtp.username else None,
            "use_tls": smtp.tls == "implicit",
            "start_tls": smtp.tls == "starttls",  # required: a login never goes in clear text
            "tls_context": self.tls_context,
            "timeout": smtp.timeout_s,
        }

    def _classified(self, error: Exception, message: EmailMessage) -> Exception:
        to = message["To"]
        if isinstance(error, aiosmtplib.SMTPRecipientsRefused) and _for_good(error):
            return MailRefused(f"{to} refused: {_answers(error)}")
        if isinstance(error, aiosmtplib.SMTPDataError) and error.code >= 500:
            return MailRefused(f"message to {to} refused: {error.code} {error.message}")
        if isinstance(error, ValueError) and not isinstance(error, OSError):  # not a TLS error
            return MailRefused(f"message to {to} cannot be sent: {error}")
        log.warning(
            "smtp %s:%d cannot take the message to %s now: %s",
            self.smtp.host,
            self.smtp.port,
            to,
            _describe(error),
        )
        return MailUnavailable(f"smtp {self.smtp.host}:{self.smtp.port}: {_describe(error)}")


def _describe(error: Exception) -> str:
    """The error in a line: its class and what the server said (never our credentials)."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        return f"recipient refused: {_answers(error)}"
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return f"{error.__class__.__name__}: {error.code} {error.message}"
    return f"{error.__class__.__name__}: {error}"


def _for_good(error: aiosmtplib.SMTPRecipientsRefused) -> bool:
    return all(r.code >= 500 for r in error.recipients)


def _answers(error: aiosmtplib.SMTPRecipientsRefused) -> str:
    return "; ".join(f"{r.code} {r.message}" for r in error.recipients)
