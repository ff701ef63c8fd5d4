"""``python -m bench [suite …] [--seconds S] [--concurrency N]``: run suites, print their tables.

Figures from one run are comparable with each other (same machine, same minute); compare ratios,
not absolute numbers, across runs or machines.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from rich.console import Console

from bench import intake, routing, scoring
from bench.servers import BenchError
from bench.suite import DEFAULT_PG_URL, Options, Suite, show

SUITES: dict[str, Suite] = {"intake": intake.run, "scoring": scoring.run, "routing": routing.run}


def parse_args(argv: list[str] | None = None) -> tuple[Options, list[str]]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "suites", nargs="*", metavar="suite", help=f"one of {', '.join(SUITES)} (default: all)"
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="measured seconds per run (default 10)"
    )
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="warm-up seconds per run (default 2)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=64, help="keep-alive connections (default 64)"
    )
    parser.add_argument(
        "--processes", type=int, default=1, help="load-generator processes (default 1)"
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("BENCH_PG_URL", DEFAULT_PG_URL),
        help="PostgreSQL database used to create and drop the benchmark database "
        "(default $BENCH_PG_URL or %(default)s)",
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.suites if name not in SUITES]
    if unknown:
        parser.error(f"unknown suite {unknown[0]!r}; choose from {', '.join(SUITES)}")
    if args.seconds <= 0 or args.warmup < 0:
        parser.error("--seconds must be > 0 and --warmup >= 0")
    if args.concurrency < 1 or not 1 <= args.processes <= args.concurrency:
        parser.error("--concurrency must be >= 1 and --processes between 1 and --concurrency")
    options = Options(
        seconds=args.seconds,
        warmup=args.warmup,
        concurrency=args.concurrency,
        processes=args.processes,
        pg_url=args.pg_url,
    )
    return options, list(dict.fromkeys(args.suites)) or list(SUITES)


def code_state() -> str:
    """The commit measured, and whether tracked files differed from it (read-only git calls)."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "code: not a git checkout"
    return f"code: {commit}" + (" + uncommitted changes" if changed else "")


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds through every ``finally``: children stop, DB drops


def main(argv: list[str] | None = None) -> int:
    options, names = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    console = Console(width=None if sys.stdout.isatty() else 140, log_path=False)
    console.print(
        f"Leadflow benchmarks — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, {platform.machine()}, {code_state()}"
    )
    ok = True
    try:
        for name in names:
            report = SUITES[name](options, lambda message: console.log(message))
            ok = show(console, report) and ok
    except BenchError as error:
        console.print(f"[bold red]benchmark failed:[/bold red] {error}")
        return 1
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        return 130
    if not ok:
        console.print("[bold red]a check failed: the figures above are not trustworthy[/bold red]")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
