"""How Kafka clients prove who they are and whom they talk to: the TLS context, and OAUTHBEARER
tokens from an OAuth 2.0 token endpoint. ``shared.kafka.client_security`` hands them to every
client; the secrets leave their ``SecretStr`` only here, and are never logged."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable

import httpx
from aiokafka.abc import AbstractTokenProvider
from aiokafka.errors import KafkaConnectionError
from aiokafka.helpers import create_ssl_context
from pydantic import SecretStr

from shared.config import KafkaSettings

RENEW_AT = 0.8
"""A token is fetched again once this share of its lifetime has passed (Kafka's Java client
refreshes at the same point), so a connection never opens with one about to expire."""


def tls_context(settings: KafkaSettings) -> ssl.SSLContext:
    """The brokers' certificates checked against ``ssl_cafile`` (else the system's CAs), and
    the client certificate presented when one is set (mutual TLS)."""
    password = settings.ssl_key_password
    context = create_ssl_context(
        cafile=settings.ssl_cafile,
        certfile=settings.ssl_certfile,
        keyfile=settings.ssl_keyfile,
        password=password.get_secret_value() if password else None,
    )
    # The certificate is still verified without it; only the name in it is not compared.
    context.check_hostname = settings.ssl_check_hostname
    return context


class TokenUnavailable(KafkaConnectionError):
    """No token from the token endpoint: like a broker that cannot be reached, it is retried."""


class ClientCredentialsTokens(AbstractTokenProvider):
    """OAUTHBEARER tokens by the OAuth 2.0 client credentials grant (RFC 6749, section 4.4):
    one POST to ``url`` with the client's id and secret (HTTP Basic), kept for ``RENEW_AT`` of
    the ``expires_in`` it came with (without one, a token is fetched for each connection)."""

    def __init__(
        self,
        url: str,
        client_id: str,
        client_secret: SecretStr,
        *,
        scope: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.client_id = client_id
        self.scope = scope
        self._secret = client_secret
        self._transport = transport
        self._clock = clock
        self._token: str | None = None
        self._renew_at = 0.0
        self._lock = asyncio.Lock()  # connections opened at once share one request

    async def token(self) -> str:
        async with self._lock:
            if self._token is not None and self._clock() < self._renew_at:
                return self._token
            token, lifetime = await self._fetch()
            self._token, self._renew_at = token, self._clock() + RENEW_AT * lifetime
            return token

    async def _fetch(self) -> tuple[str, float]:
        form = {"grant_type": "client_credentials"}
        if self.scope:
            form["scope"] = self.scope
        auth = (self.client_id, self._secret.get_secret_value())
        try:
            async with httpx.AsyncClient(transport=self._transport, timeout=10.0) as client:
                answer = await client.post(self.url, data=form, auth=auth)
        except httpx.HTTPError as error:
            raise TokenUnavailable(f"token endpoint {self.url}: {error!r}") from None
        if answer.status_code != 200:
            raise TokenUnavailable(f"token endpoint {self.url} answered {answer.status_code}")
        try:
            body = answer.json()
            return str(body["access_token"]), float(body.get("expires_in") or 0)
        except (ValueError, KeyError, TypeError):
            raise TokenUnavailable(f"token endpoint {self.url}: no access_token") from None
