"""``python -m bench.broker [--rate R] [--windows N] [--seconds S]``: the embedded broker's CPU.

Produces ``--rate`` records per second (600 bytes, as a lead event) to one topic while a
consumer group fetches and commits them, and prints the broker process's CPU in consecutive
windows. With tansu 0.6.0's memory storage a fetch costs more the longer the topic's log is:
at a steady rate the broker's CPU climbs window after window (producing alone stays flat). That
is why ``bench.webhooks`` gets slower the longer it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from rich.console import Console
from rich.table import Table

from shared.broker import EmbeddedBroker

console = Console(width=None if sys.stdout.isatty() else 120)


def _ticks(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


async def _run(args: argparse.Namespace, broker: EmbeddedBroker, pid: int) -> list[tuple]:
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, linger_ms=2)
    await producer.start()
    await producer.send_and_wait("bench", b"x" * 600, key=b"0")
    consumer = AIOKafkaConsumer(
        "bench",
        bootstrap_servers=broker.bootstrap_servers,
        group_id="bench",
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
        enable_auto_commit=False,
    )
    await consumer.start()
    consumed = 0

    async def consume() -> None:
        nonlocal consumed
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            if batches:
                consumed += sum(map(len, batches.values()))
                await consumer.commit()

    task = asyncio.create_task(consume())
    hz, sent, rows = os.sysconf("SC_CLK_TCK"), 0, []
    try:
        for window in range(args.windows):
            started, ticks, before = time.perf_counter(), _ticks(pid), sent
            while (elapsed := time.perf_counter() - started) < args.seconds:
                due = int(elapsed * args.rate) - (sent - before)
                for _ in range(due):
                    await producer.send("bench", b"x" * 600, key=str(sent).encode())
                    sent += 1
                await asyncio.sleep(0.005)
            wall = time.perf_counter() - started
            cpu = (_ticks(pid) - ticks) / hz / wall
            rows.append((window, sent, (sent - before) / wall, cpu, consumed))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await consumer.stop()
        await producer.stop()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.broker", description=__doc__)
    parser.add_argument("--rate", type=float, default=1000, help="records per second")
    parser.add_argument("--windows", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per window")
    args = parser.parse_args()
    with EmbeddedBroker() as broker:
        pid = broker._process.pid  # noqa: SLF001 - the benchmark measures that process
        rows = asyncio.run(_run(args, broker, pid))
    table = Table(title="Embedded broker (tansu, memory storage): CPU while the log grows")
    for heading in ("window", "records in the log", "produced/s", "broker cores", "consumed"):
        table.add_column(heading, justify="right")
    for window, total, rate, cpu, consumed in rows:
        table.add_row(str(window), f"{total:,}", f"{rate:,.0f}", f"{cpu:.2f}", f"{consumed:,}")
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
