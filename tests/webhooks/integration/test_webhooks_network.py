"""The dispatcher's network layer (``services.webhooks.network``) against real local servers:
keep-alive, a connection the server closed while idle, TLS, timeouts, refused connections; and
``send`` on the bare transport: no cookies kept, no redirect followed, the body read to a limit."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import httpcore
import httpx
import pytest

from services.webhooks import network
from services.webhooks.queue import Claimed
from services.webhooks.sending import make_client, make_transport, send
from services.webhooks.settings import WebhookSettings
from tests.support.common import self_signed_certificate

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@asynccontextmanager
async def server(serve: Serve, tls: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    listening = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=tls)
    try:
        yield listening.sockets[0].getsockname()[1]
    finally:
        listening.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        ),
        0,
    )
    return await reader.readexactly(length)


def client(**pool: object) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport()
    transport._pool = httpcore.AsyncConnectionPool(network_backend=network.Backend(), **pool)  # noqa: SLF001
    return httpx.AsyncClient(transport=transport)


async def test_keep_alive_and_a_connection_closed_while_idle() -> None:
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        body = await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        body = await read_request(reader)  # a second request on the same connection
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        writer.close()  # then the server closes it, idle

    async with server(serve) as port, client() as http:
        url = f"http://127.0.0.1:{port}/"
        assert (await http.post(url, content=b"one")).content == b"one"
        assert (await http.post(url, content=b"two")).content == b"two"
        assert connections == 1
        await asyncio.sleep(0.05)  # the close reaches the client's idle connection
        # It is seen as closed: the request goes out on a new connection, it does not fail.
        assert (await http.post(url, content=b"three")).content == b"three"
        assert connections == 2


async def test_large_bodies_both_ways() -> None:
    payload = b"x" * 3_000_000

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        body = await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        await writer.drain()

    async with server(serve) as port, client() as http:
        response = await http.post(f"http://127.0.0.1:{port}/", content=payload)
        assert response.content == payload


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    return self_signed_certificate(tmp_path)


async def test_tls(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate
    server_side = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side.load_cert_chain(cert, key)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(OK)
        await writer.drain()

    async with server(serve, server_side) as port:
        url = f"https://127.0.0.1:{port}/"
        async with client(ssl_context=ssl.create_default_context(cafile=cert)) as http:
            response = await http.post(url, content=b"{}")
            assert response.text == "ok"
            assert response.extensions["network_stream"].get_extra_info("ssl_object") is not None
        async with client(ssl_context=ssl.create_default_context()) as http:  # not trusted
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await http.post(url, content=b"{}")


async def test_timeouts_and_refused_connections() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(5)

    async with server(silent) as port, client() as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.post(f"http://127.0.0.1:{port}/", content=b"{}", timeout=0.2)
    async with server(silent) as port:
        pass  # closed: nothing listens on the port any more
    async with client() as http:
        with pytest.raises(httpx.ConnectError):
            await http.post(f"http://127.0.0.1:{port}/", content=b"{}")


async def test_the_dispatchers_client_uses_it_behind_the_ssrf_guard() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not reader.at_eof():
            with contextlib.suppress(asyncio.IncompleteReadError):
                await read_request(reader)
                writer.write(OK)

    async with server(serve) as port:
        url = f"http://127.0.0.1:{port}/"
        allowed = WebhookSettings(allowed_networks=["127.0.0.0/8"])
        async with make_client(allowed) as http:
            assert (await http.post(url, content=b"{}")).text == "ok"
            stream = (await http.post(url, content=b"{}")).extensions["network_stream"]
            assert isinstance(stream, network.Stream)


async def test_send_keeps_no_cookies_and_follows_no_redirect() -> None:
    requests: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not reader.at_eof():
            with contextlib.suppress(asyncio.IncompleteReadError):
                head = await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(int(head.lower().split(b"content-length:")[1].split()[0]))
                requests.append(head)
                writer.write(
                    b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nSet-Cookie: session=abc\r\n"
                    b"Content-Length: 10\r\n\r\n0123456789"
                )

    config = WebhookSettings(allowed_networks=["127.0.0.0/8"], max_response_bytes=4)
    async with server(serve) as port, make_transport(config) as transport:
        claimed = _claimed(port)
        first = await send(transport, claimed, config, datetime.now(UTC))
        await send(transport, claimed, config, datetime.now(UTC))
    assert first.status == 302
    assert first.error == "HTTP 302: redirects are not followed"
    assert first.excerpt == "0123"
    assert len(requests) == 2  # no request to /elsewhere
    assert all(b"cookie" not in head.lower() for head in requests)


async def test_attempts_timed_out_in_a_full_pool_leave_it_working() -> None:
    """Attempts cut short by ``send``'s timeout (more at once than the process's concurrency:
    the dispatcher bounds that, not the pool) leave no broken connection behind for the next
    attempts, which all get answers."""
    slow = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not reader.at_eof():
            with contextlib.suppress(asyncio.IncompleteReadError):
                await read_request(reader)
                if not slow.is_set():
                    await asyncio.sleep(5)
                writer.write(OK)

    config = WebhookSettings(allowed_networks=["127.0.0.0/8"], concurrency=2, timeout_s=0.3)
    async with server(serve) as port, make_transport(config) as transport:
        claimed = _claimed(port)
        attempt = lambda: send(transport, claimed, config, datetime.now(UTC))  # noqa: E731
        timed_out = await asyncio.gather(*(attempt() for _ in range(6)))
        slow.set()
        answered = await asyncio.gather(*(attempt() for _ in range(20)))
    assert [o.error for o in timed_out] == ["timed out after 0.3s"] * 6
    assert [(o.status, o.error) for o in answered] == [(200, None)] * 20


async def test_the_dispatchers_pool_reuses_connections_by_origin() -> None:
    """``pool.Pool``: one connection for sends in sequence; as many as were in flight at once,
    all kept and reused afterwards; a response not read to its end (past the limit) closes its
    connection instead of returning it."""
    opened: list[int] = []

    def serving(body: bytes) -> Serve:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            opened.append(1)
            while not reader.at_eof():
                with contextlib.suppress(asyncio.IncompleteReadError):
                    await read_request(reader)
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
                    writer.write(body)

        return serve

    config = WebhookSettings(allowed_networks=["127.0.0.0/8"], max_response_bytes=4)
    async with server(serving(b"ok")) as port, make_transport(config) as transport:
        attempt = lambda: send(transport, _claimed(port), config, datetime.now(UTC))  # noqa: E731
        for _ in range(3):
            assert (await attempt()).status == 200
        assert len(opened) == 1
        outcomes = await asyncio.gather(*(attempt() for _ in range(5)))
        assert [o.status for o in outcomes] == [200] * 5
        at_once = len(opened)
        assert 1 < at_once <= 5
        outcomes = await asyncio.gather(*(attempt() for _ in range(at_once)))
        assert [o.status for o in outcomes] == [200] * at_once
        assert len(opened) == at_once  # every one of them was kept and reused

    opened.clear()
    async with server(serving(b"0123456789")) as port, make_transport(config) as transport:
        for _ in range(2):
            outcome = await send(transport, _claimed(port), config, datetime.now(UTC))
            assert (outcome.status, outcome.excerpt) == (200, "0123")
        assert len(opened) == 2  # the first connection still held the body's rest: closed


def _claimed(port: int) -> Claimed:
    """A message to the receiver on ``port``, as a claim hands it to ``send``."""
    return Claimed(
        seq=1,
        id=uuid4(),
        subscription_id=uuid4(),
        event_id="evt_1",
        event_type="lead.mql",
        lead_id="lead-1",
        payload='{"type":"lead.mql"}',
        attempts=0,
        url=f"http://127.0.0.1:{port}/hook",
        secrets=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
        half_open=False,
    )
