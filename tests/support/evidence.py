"""What the processes left behind: their logs, and the broker's dead-letter topic.

The logs are structlog's console lines (``<time> [<level>] <message> [<logger>]``, coloured
whatever the terminal), a traceback drawn in boxes under its line.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from tests.support.effects import OutboxRow

ANSI = re.compile(r"\x1b\[[0-9;]*m")
LINE = re.compile(r"^\S+Z \[(\w+)\s*\] (.*?)\s*(\[[\w.]+\])?$")


@dataclass
class LogFindings:
    levels: Counter[str] = field(default_factory=Counter)
    """(process, level) → lines, as ``"scoring error"``."""
    messages: Counter[str] = field(default_factory=Counter)
    """Each distinct error or critical line (its first 160 characters), with its process."""
    dead_lettered: list[str] = field(default_factory=list)
    tracebacks: int = 0

    def read(self, process: str, log: Path) -> None:
        if not log.exists():
            return
        for raw in log.read_text(errors="replace").splitlines():
            line = ANSI.sub("", raw)
            self.tracebacks += "Traceback (most recent call last)" in line
            if not (match := LINE.match(line)):
                continue
            level, message = match.group(1), match.group(2)
            self.levels[f"{process} {level}"] += 1
            if "dead-lettered" in message:
                self.dead_lettered.append(f"{process}: {message}")
            if level in ("error", "critical"):
                self.messages[f"{process} {level}: {_generic(message)[:160]}"] += 1

    def count(self, level: str) -> int:
        return sum(n for key, n in self.levels.items() if key.endswith(f" {level}"))


def read_logs(logs: dict[str, Path]) -> LogFindings:
    findings = LogFindings()
    for process, log in logs.items():
        findings.read(process, log)
    return findings


def _generic(message: str) -> str:
    """A message without its ids, offsets and numbers, so that alike lines count together."""
    message = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "<id>", message)
    return re.sub(r"\d+(\.\d+)?", "<n>", message)


async def dead_letters(bootstrap_servers: str, topic: str) -> int | None:
    """Records in the dead-letter topic (those since the broker last started: it keeps them in
    memory only, so the logs are the record that survives a broker restart); ``None`` if the
    broker could not be asked."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    try:
        await consumer.start()
        if topic not in await consumer.topics():
            return 0  # nothing was ever dead-lettered since the broker started
        assigned = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        first = await consumer.beginning_offsets(assigned)
        last = await consumer.end_offsets(assigned)
        return sum(int(last[p]) - int(first[p]) for p in assigned)
    except KafkaError:
        return None
    finally:
        await consumer.stop()


async def where_unconsumed(
    bootstrap_servers: str, group_prefix: str, unconsumed: dict[str, list[OutboxRow]]
) -> list[str]:
    """Where each consumer's unprocessed events lie on the broker now, beside the offsets its
    group has committed there: ``scoring: p.intake[0] committed 812, end 1045; 40 unprocessed
    at offsets 3–97, 5 not on the topic``. Evidence for a lost effect: an event before the
    committed offset was skipped, one after it is still to come, one absent was never
    (re)published to this broker."""
    lines: list[str] = []
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False)
    try:
        await reader.start()
        located = await _locate(reader, {row.topic for rows in unconsumed.values() for row in rows})
        for consumer, rows in sorted(unconsumed.items()):
            if rows:
                committed = await _committed(
                    bootstrap_servers, f"{group_prefix}.{consumer}", located
                )
                lines += _describe(consumer, rows, located, committed)
    except KafkaError as error:
        lines.append(f"the broker could not be read: {error!r}")
    finally:
        await reader.stop()
    return lines


Located = dict[str, tuple[TopicPartition, int]]
"""Event id → the partition and offset holding it."""


async def _locate(
    reader: AIOKafkaConsumer, topics: set[str]
) -> tuple[Located, dict[TopicPartition, int]]:
    where: Located = {}
    present = await reader.topics()
    partitions = [
        TopicPartition(topic, p)
        for topic in sorted(topics & present)
        for p in reader.partitions_for_topic(topic) or ()
    ]
    if not partitions:
        return where, {}
    reader.assign(partitions)
    await reader.seek_to_beginning(*partitions)
    ends = {tp: int(offset) for tp, offset in (await reader.end_offsets(partitions)).items()}
    while [tp for tp, end in ends.items() if await reader.position(tp) < end]:
        for tp, records in (await reader.getmany(timeout_ms=1000)).items():
            for record in records:
                event_id = orjson.loads(record.value or b"{}").get("id")
                where.setdefault(str(event_id), (tp, record.offset))
    return where, ends


async def _committed(
    bootstrap_servers: str, group_id: str, located: tuple[Located, dict[TopicPartition, int]]
) -> dict[TopicPartition, int | None]:
    asker = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=group_id, enable_auto_commit=False
    )
    await asker.start()
    try:
        return {tp: await asker.committed(tp) for tp in located[1]}
    finally:
        await asker.stop()


def _describe(
    consumer: str,
    rows: list[OutboxRow],
    located: tuple[Located, dict[TopicPartition, int]],
    committed: dict[TopicPartition, int | None],
) -> list[str]:
    where, ends = located
    by_partition: dict[TopicPartition, list[int]] = {}
    absent = 0
    for row in rows:
        if row.id in where:
            tp, offset = where[row.id]
            by_partition.setdefault(tp, []).append(offset)
        else:
            absent += 1
    lines = [
        f"{consumer}: {tp.topic}[{tp.partition}] committed {committed.get(tp)}, end {ends[tp]};"
        f" {len(offsets)} unprocessed at offsets {min(offsets)}–{max(offsets)}"
        for tp, offsets in sorted(by_partition.items())
    ]
    if absent:
        lines.append(f"{consumer}: {absent} unprocessed events not on the broker")
    return lines
