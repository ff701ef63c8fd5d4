"""Logging: structlog renders the standard library's records, as text or JSON lines."""

from __future__ import annotations

import logging

import structlog

from shared.tracing import add_trace_ids

# Libraries whose debug or info lines carry statement parameters, result rows or full URLs, and so
# signing secrets, tokens in a CRM's URL and personal data. They log warnings and errors only,
# whatever the level. (``db.echo`` still shows statements: SQLAlchemy's echo sets its own level.)
QUIET_LIBRARIES = ("aiokafka", "aiosqlite", "asyncpg", "sqlalchemy", "httpx", "httpcore")


def configure_logging(level: str = "INFO", *, json: bool = False) -> None:
    # Tracebacks as plain text: the console renderer's default (rich) prints each frame's local
    # variables, among them passwords, signing secrets and keys; JSON lines carry the same text
    # in ``exception`` (without ``format_exc_info`` they carried only the exception's repr).
    renderers: list[structlog.typing.Processor] = (
        [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
        if json
        else [structlog.dev.ConsoleRenderer(exception_formatter=structlog.dev.plain_traceback)]
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderers],
        foreign_pre_chain=[
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            add_trace_ids,  # with tracing on: trace_id and span_id of the span recording
        ],
    )
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
