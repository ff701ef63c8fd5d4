"""Optional CEL filters on a subscription, e.g. ``data.segment == "enterprise"``.

The expression sees ``type``, ``subject`` and ``data`` of the event. A filter that cannot be
evaluated for an event (a missing field, a type error) does not match it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import cel


class InvalidFilter(ValueError):
    pass


@lru_cache(maxsize=1024)
def compiled(expression: str) -> Any:
    try:
        return cel.compile(expression)
    except (ValueError, RuntimeError) as error:
        raise InvalidFilter(str(error).splitlines()[0]) from None


def validate(expression: str) -> None:
    compiled(expression)


def passes(expression: str | None, event: dict[str, Any]) -> bool:
    if not expression:
        return True
    context = {
        "type": event.get("type"),
        "subject": event.get("subject"),
        "data": event.get("data") or {},
    }
    try:
        return compiled(expression).execute(context) is True
    except Exception:  # noqa: BLE001 - an unevaluable filter is a non-match, not a failure
        return False
