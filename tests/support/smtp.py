"""A real SMTP server on 127.0.0.1 for the notifier's tests (aiosmtpd, in the test's event loop).

It keeps every message it accepts; ``wait_for(n)`` returns once n have arrived (woken by the
server as each one is accepted, not by polling). It can refuse chosen recipients with the answer
given, require STARTTLS and a login, and counts the connections made to it. (``handle_RCPT`` and
``handle_DATA`` are aiosmtpd's hooks, named by it.)
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, cast

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.support.common import self_signed_certificate


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    login: str | None = None

    @property
    def to(self) -> str:
        return str(self.message["To"])

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        return str(self.message.get_content())


@dataclass
class SmtpServer:
    refuse: dict[str, str] = field(default_factory=dict)
    """Recipient → the server's answer to RCPT TO, e.g. ``"550 5.1.1 no such user"``."""
    tls_context: ssl.SSLContext | None = None
    """If set: STARTTLS offered and required before anything else."""
    logins: dict[str, str] = field(default_factory=dict)
    """If any: a login (only over TLS) is required to send."""
    received: list[Received] = field(default_factory=list)
    connections: int = 0
    _server: asyncio.Server | None = None
    _sessions: list[SMTP] = field(default_factory=list)
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> SmtpServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._session, "127.0.0.1", 0)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for session in self._sessions:
                if session.transport is not None:
                    session.transport.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> SmtpServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_for(self, count: int, *, within: float = 10.0) -> list[Received]:
        """The first ``count`` messages, once they have arrived (or fail after ``within`` s)."""
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: len(self.received) >= count)
        return self.received[:count]

    def _session(self) -> SMTP:
        self.connections += 1
        session = SMTP(
            self,
            hostname="127.0.0.1",
            tls_context=self.tls_context,
            require_starttls=self.tls_context is not None,
            auth_required=bool(self.logins),
            auth_require_tls=True,
            authenticator=self._authenticate,
            loop=asyncio.get_running_loop(),
        )
        self._sessions.append(session)
        return session

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login, password = data.login.decode(), data.password.decode()
        ok = self.logins.get(login) == password
        return AuthResult(success=ok, handled=False, auth_data=login)  # handled=False: 535

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message = cast(EmailMessage, message_from_bytes(content, policy=policy.default))
        login = session.auth_data if session.authenticated else None
        received = Received(envelope.mail_from or "", list(envelope.rcpt_tos), message, login)
        async with self._arrived:
            self.received.append(received)
            self._arrived.notify_all()
        return "250 Message accepted for delivery"


def self_signed(folder: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for 127.0.0.1 and a client context that trusts it
    (and nothing else)."""
    cert, key = self_signed_certificate(folder)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    return server, ssl.create_default_context(cafile=str(cert))
