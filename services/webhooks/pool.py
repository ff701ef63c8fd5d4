"""The dispatcher's keep-alive connections, by origin.

httpcore's ``AsyncConnectionPool`` walks every pooled connection twice per request, and its
keep-alive check is quadratic in their number (encode/httpcore#1035, not merged in 1.0.9): with
32 connections to one CRM that bookkeeping was a fifth of the webhooks process. The dispatcher
already bounds how many requests are in flight (per process and per endpoint), so this pool
never queues a request: it takes the most recently used idle connection of the request's origin,
or opens one (on httpcore's own ``AsyncHTTPConnection``, over the SSRF-guarded backend). A
connection goes back to its origin's idle list when its response is closed with the exchange
complete; a connection the server closed, or idle past the keep-alive expiry, is dropped when
it is next looked at.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator

import httpcore


class Pool:
    """What httpx's ``AsyncHTTPTransport`` asks of its pool: ``handle_async_request``, closing."""

    def __init__(
        self,
        *,
        network_backend: httpcore.AsyncNetworkBackend,
        ssl_context: ssl.SSLContext,
        keepalive_expiry: float,
        max_idle: int,
    ) -> None:
        self.network_backend = network_backend
        self.ssl_context = ssl_context
        self.keepalive_expiry = keepalive_expiry
        self.max_idle = max_idle
        self.idle: dict[_Key, list[httpcore.AsyncHTTPConnection]] = {}
        self.closed = False

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        if self.closed:
            raise RuntimeError("the dispatcher's connection pool is closed")
        origin = request.url.origin
        while True:
            connection = await self._idle_connection(origin)
            reused = connection is not None
            if connection is None:
                connection = httpcore.AsyncHTTPConnection(
                    origin=origin,
                    ssl_context=self.ssl_context,
                    keepalive_expiry=self.keepalive_expiry,
                    network_backend=self.network_backend,
                )
            try:
                response = await connection.handle_async_request(request)
            except httpcore.ConnectionNotAvailable:
                if reused:
                    continue  # it was closing after all: take another
                raise
            except BaseException:
                await connection.aclose()
                raise
            return httpcore.Response(
                status=response.status,
                headers=response.headers,
                content=_Body(response.stream, self, origin, connection),
                extensions=response.extensions,
            )

    async def _idle_connection(
        self, origin: httpcore.Origin
    ) -> httpcore.AsyncHTTPConnection | None:
        idle = self.idle.get(_key(origin))
        while idle:
            connection = idle.pop()
            if connection.is_available() and not connection.has_expired():
                return connection
            await connection.aclose()
        return None

    async def _returned(
        self, origin: httpcore.Origin, connection: httpcore.AsyncHTTPConnection
    ) -> None:
        """The response was closed: keep the connection if the exchange left it reusable."""
        idle = self.idle.setdefault(_key(origin), [])
        if self.closed or not connection.is_idle() or len(idle) >= self.max_idle:
            await connection.aclose()
            return
        idle.append(connection)

    async def aclose(self) -> None:
        self.closed = True
        idle, self.idle = self.idle, {}
        for connections in idle.values():
            for connection in connections:
                await connection.aclose()

    async def __aenter__(self) -> Pool:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()


_Key = tuple[bytes, bytes, int]


def _key(origin: httpcore.Origin) -> _Key:
    """httpcore's ``Origin`` compares by value but is not hashable."""
    return (origin.scheme, origin.host, origin.port)


class _Body:
    """The response body; closing it returns the connection to the pool."""

    def __init__(
        self,
        stream: object,
        pool: Pool,
        origin: httpcore.Origin,
        connection: httpcore.AsyncHTTPConnection,
    ) -> None:
        self.stream = stream
        self.pool = pool
        self.origin = origin
        self.connection = connection
        self.done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.stream:  # type: ignore[attr-defined]
            yield chunk

    async def aclose(self) -> None:
        if self.done:
            return
        self.done = True
        try:
            await self.stream.aclose()  # type: ignore[attr-defined]
        except BaseException:
            await self.connection.aclose()
            raise
        await self.pool._returned(self.origin, self.connection)  # noqa: SLF001
