"""Pure: an event as a chat message for ops, the body of a ``slack``-format subscription.

Slack-compatible incoming-webhook JSON: ``{"text": …, "blocks": […]}``. Slack, Mattermost,
Rocket.Chat and Teams workflows read ``text``; Slack shows ``blocks`` and uses ``text`` for the
notification. The input is the event as the subscription may see it (``matching.outbound``:
consent already applied), so a field the dispatcher left out is never shown. Only the fields named
here are rendered, each escaped and clipped: nothing else of the payload reaches the chat, and the
lead's personal fields (``shared.privacy.PERSONAL_KEYS``, e.g. an acknowledgement's ``note``)
never do — an erasure scrubs only a CloudEvent's ``data``, and a chat message has none.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

MAX_VALUE = 200
"""Characters of one rendered value; the event models bound most of them already."""

Data = Mapping[str, Any]


def message(event: Mapping[str, Any]) -> dict[str, Any]:
    """The chat message for ``event`` (a CloudEvent as a JSON document)."""
    text = line(event)
    about = [_clean(event.get("type", "event"))]
    if event.get("time"):
        about.append(_time(event["time"]))
    if event.get("id"):
        about.append(f"event {_clean(event['id'])}")
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(about)}]},
        ],
    }


def line(event: Mapping[str, Any]) -> str:
    """One line for a person: what happened, to which lead and whose clock."""
    data = event.get("data")
    data = data if isinstance(data, Mapping) else {}
    kind = str(event.get("type", "event"))
    lead = data.get("lead_id") or event.get("subject")
    render = SLA.get(kind)
    if render is None or not lead:
        return f"{_clean(kind)} for lead {_clean(lead)}" if lead else _clean(kind)
    emoji, title, what = render
    return f"{emoji} {title(data)} — lead {_clean(lead)}{_who(data)}: {what(data)}"


def _who(data: Data) -> str:
    """`` (owner ana@example.com, team emea)``, ``(unassigned, …)`` for a queued lead."""
    parts = []
    if data.get("owner_email"):
        parts.append(f"owner {_clean(data['owner_email'])}")
    elif data.get("owner_id") is None:
        parts.append("unassigned")
    if data.get("team"):
        parts.append(f"team {_clean(data['team'])}")
    return f" ({', '.join(parts)})" if parts else ""


def _started(data: Data) -> str:
    extra = [f"target {_duration(data['target_s'])}"] if data.get("target_s") is not None else []
    return f"{_clock(data)} due {_time(data.get('deadline'))}{_tail(data, *extra)}"


def _warning(data: Data) -> str:
    return f"{_clock(data)} deadline {_time(data.get('deadline'))} approaching{_tier(data)}"


def _breached(data: Data) -> str:
    return f"{_clock(data)} deadline {_time(data.get('deadline'))} passed{_tier(data, step=False)}"


def _escalated(data: Data) -> str:
    reassign = data.get("reassign") is not False and data.get("action", "reassign") == "reassign"
    step = "reassigning the lead" if reassign else "notifying the manager"
    why = _clean(data.get("reason") or "breached")
    deadline = _time(data.get("deadline"))
    return f"{_clock(data)} deadline {deadline} passed, {step}{_tier(data, why)}"


def _acknowledged(data: Data) -> str:
    by = f" by {_clean(data['by'])}" if data.get("by") else ""
    return f"{_clock(data)} acknowledged{by}{_tail(data)}"


def _met_title(data: Data) -> str:
    return "SLA met late" if data.get("breached") else "SLA met"


def _met(data: Data) -> str:
    extra = [_clean(data["response"])] if data.get("response") else []
    if data.get("working_time_s") is not None:
        extra.append(f"{_duration(data['working_time_s'])} working time")
    at = _time(data.get("responded_at"))
    return f"{_clock(data)} answered at {at}{_tail(data, *extra)}"


def _cancelled(data: Data) -> str:
    why = f": {_clean(data['reason'])}" if data.get("reason") else ""
    return f"{_clock(data)} clock stopped{why}{_tail(data)}"


def _title(words: str) -> Callable[[Data], str]:
    return lambda _data: words


SLA: dict[str, tuple[str, Callable[[Data], str], Callable[[Data], str]]] = {
    "sla.started": (":stopwatch:", _title("SLA started"), _started),
    "sla.warning": (":warning:", _title("SLA warning"), _warning),
    "sla.breached": (":rotating_light:", _title("SLA breached"), _breached),
    "sla.escalated": (":arrow_double_up:", _title("SLA escalated"), _escalated),
    "sla.acknowledged": (":eyes:", _title("SLA acknowledged"), _acknowledged),
    "sla.met": (":white_check_mark:", _met_title, _met),
    "sla.cancelled": (":heavy_multiplication_x:", _title("SLA cancelled"), _cancelled),
}
"""Per SLA event type: its emoji, its title, and what happened to the clock."""


def _clock(data: Data) -> str:
    return _clean(data.get("clock") or "SLA")


def _tier(data: Data, *first: str, step: bool = True) -> str:
    """``_tail`` with the ladder's step that fired and whether it fired late (the monitor was
    down or behind)."""
    extra = list(first)
    if step and data.get("tier"):
        at = f" at {_clean(data['at'])}" if data.get("at") else ""
        extra.append(f"tier {_clean(data['tier'])}{at}")
    if data.get("late"):
        extra.append(f"fired {_duration(data.get('late_by_s') or 0)} late")
    return _tail(data, *extra)


def _tail(data: Data, *extra: str) -> str:
    parts = [*extra, f"policy {_clean(data['policy'])}"] if data.get("policy") else list(extra)
    return f" ({', '.join(parts)})" if parts else ""


def _time(value: Any) -> str:
    """``2026-03-02T10:30Z``: UTC to the minute; a value that is not a time, as it came."""
    if not value:
        return "unknown"
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return _clean(value)
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%MZ")


def _duration(seconds: Any) -> str:
    """``45s``, ``12m``, ``1h 5m``, ``2d 3h``: the two largest units, to the second."""
    try:
        total = max(0, round(float(seconds)))
    except (TypeError, ValueError):
        return "?"
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    units = [(days, "d"), (hours, "h"), (minutes, "m"), (secs, "s")]
    first = next((i for i, (n, _unit) in enumerate(units) if n), len(units) - 1)
    return " ".join(f"{n}{unit}" for n, unit in units[first : first + 2] if n) or "0s"


def _clean(value: Any) -> str:
    """A value as text a chat shows as it is: clipped, and with Slack's three control characters
    escaped, so a value cannot mention ``<!channel>`` or make a link."""
    text = " ".join(str(value).split())[:MAX_VALUE]
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
