"""What every suite takes (``Options``) and gives back (``Report``) for ``__main__`` to print."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.loadgen import Stats


@dataclass(frozen=True)
class Options:
    seconds: float
    """Measured duration of each load run."""
    warmup: float
    """Unmeasured load before each measured run (connections, pools, caches, JIT-free warm-up)."""
    concurrency: int
    """Keep-alive HTTP/1.1 connections, each with one request in flight."""
    processes: int
    """Load-generator processes the connections are spread over."""
    pg_url: str
    """A PostgreSQL database to connect to in order to create (and drop) the benchmark database."""


@dataclass(frozen=True)
class Row:
    label: str
    stats: Stats


@dataclass(frozen=True)
class Check:
    """A correctness check made after a run; a failed check fails ``make bench``."""

    name: str
    ok: bool
    detail: str


@dataclass
class Report:
    title: str
    caption: str
    rows: list[Row] = field(default_factory=list)
    ratios: list[tuple[str, float]] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    tables: list[Any] = field(default_factory=list)
    """Tables (rich renderables) a suite without HTTP rows builds itself, printed as they are."""


Log = Callable[[str], None]
Suite = Callable[[Options, Log], Report]
