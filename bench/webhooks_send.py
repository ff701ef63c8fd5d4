"""``python -m bench.webhooks_send [--sends N]``: the dispatcher's CPU per HTTP attempt.

``services.webhooks.sending.send`` (signing, httpx, the SSRF-guarded network layer) against
the test receiver running in another process, 8 requests at a time over keep-alive connections;
reports this process's CPU time per send. No database, no broker: only the HTTP path.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from uuid import uuid4

import uvloop

from services.webhooks.queue import Claimed
from services.webhooks.sending import make_transport, send
from services.webhooks.settings import WebhookSettings

RECEIVER = """
import asyncio, sys, uvloop
from tests.support.receiver import Receiver
async def main():
    await Receiver(keep=False).start(int(sys.argv[1]))
    print("ready", flush=True)
    await asyncio.Event().wait()
uvloop.run(main())
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _run(port: int, sends: int, concurrency: int) -> tuple[float, float]:
    config = WebhookSettings(allowed_networks=["127.0.0.0/8"])
    claimed = Claimed(
        seq=1,
        id=uuid4(),
        subscription_id=uuid4(),
        event_id="evt_bench",
        event_type="lead.mql",
        lead_id="lead-bench",
        payload='{"type":"lead.mql","data":{"note":"' + "x" * 600 + '"}}',
        attempts=0,
        url=f"http://127.0.0.1:{port}/hook",
        secrets=["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
        half_open=False,
    )
    slots = asyncio.Semaphore(concurrency)
    async with make_transport(config) as transport:

        async def one() -> None:
            async with slots:
                outcome = await send(transport, claimed, config, datetime.now(UTC))
                assert outcome.status == 200, outcome

        await asyncio.gather(*(one() for _ in range(300)))  # connections, caches
        cpu, wall = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one() for _ in range(sends)))
        return time.process_time() - cpu, time.perf_counter() - wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks_send", description=__doc__)
    parser.add_argument("--sends", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    port = _free_port()
    receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port)], stdout=subprocess.PIPE)
    try:
        assert receiver.stdout is not None
        receiver.stdout.readline()
        cpu, wall = uvloop.run(_run(port, args.sends, args.concurrency))
    finally:
        receiver.terminate()
        receiver.wait()
    print(
        f"{args.sends:,} sends: {cpu / args.sends * 1e6:,.0f} µs CPU per send in this process, "
        f"{args.sends / wall:,.0f} sends/s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
