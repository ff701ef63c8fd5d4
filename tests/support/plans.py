"""PostgreSQL plans as ``EXPLAIN (FORMAT JSON)`` gives them, for tests that check a statement's
plan."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any


def plan_of(explained: Any) -> dict[str, Any]:
    """The top plan node of an ``EXPLAIN (FORMAT JSON)`` answer (text, or JSON already decoded)."""
    document = json.loads(explained) if isinstance(explained, str) else explained
    return document[0]["Plan"]


def nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``node`` and every node under it."""
    yield node
    for child in node.get("Plans", []):
        yield from nodes(child)
