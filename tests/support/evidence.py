"""What the processes left behind: their logs, and the broker's dead-letter topic.

The logs are structlog's console lines (``<time> [<level>] <message> [<logger>]``, coloured
whatever the terminal), a traceback drawn in boxes under its line.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

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
