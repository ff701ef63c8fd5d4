"""The emails an SLA event sends: what a rep needs to act on the lead, and by when (pure: no I/O).

One message per recipient, each addressed to that person alone: the wording can say "you" to the
owner, the mailer can tell which recipient the server took and which it refused, and recipients
are not shown each other's addresses. Each message's ``Message-ID`` is derived from the event and
the recipient, so the same event composes the same messages again (the mailer relies on it to
skip what it already sent, and mail clients may fold a duplicate into the original).

Times are written in UTC: the event does not carry the business calendar's time zone. A relative
time ("in 15 min") is counted from the event's ``time``, not from when the email is composed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from uuid import UUID

from shared.events import SlaBreached, SlaEscalated, SlaStarted, SlaWarning
from shared.events.sla import ClockKind

SlaNotice = SlaStarted | SlaWarning | SlaBreached | SlaEscalated
NOTICES = (SlaStarted, SlaWarning, SlaBreached, SlaEscalated)

ACT: dict[ClockKind | None, str] = {
    "pickup": "pick it up",
    "first_response": "respond",
    "acceptance": "accept or reject it",
    "follow_up": "follow up",
    None: "respond",
}
"""What the clock asks of its owner, as a verb."""
TARGET: dict[ClockKind | None, str] = {
    "pickup": "pickup",
    "first_response": "first response",
    "acceptance": "acceptance",
    "follow_up": "follow-up",
    None: "response",
}
"""The same, as a noun."""


@dataclass(frozen=True)
class LeadCard:
    """What a rep needs to call the lead, and why it qualified."""

    lead_id: UUID
    source: str
    stage: str
    name: str | None = None
    company: str | None = None
    title: str | None = None
    phone: str | None = None
    email: str | None = None
    fit_grade: str | None = None
    score: int | None = None
    stage_reason: str | None = None
    rules: tuple[str, ...] = ()
    """The rules that moved it to its stage (the scoring history's last stage move)."""

    @property
    def label(self) -> str:
        """ "Ada Lovelace (Analytical Engines)": who, and where from, in one line."""
        who = self.name or self.email or self.phone or "A lead"
        return _line(f"{who} ({self.company})" if self.company else who)


def explain_url(public_url: str, lead_id: UUID) -> str:
    """Where the lead's qualification and routing are explained."""
    return f"{public_url.rstrip('/')}/v1/leads/{lead_id}/explain"


def recipients(event: SlaNotice) -> list[str]:
    """Whom ``notify`` names, each once (addresses compared case-insensitively), in its order."""
    seen: dict[str, str] = {}
    for address in event.data.notify:
        if address.strip():
            seen.setdefault(address.strip().casefold(), address.strip())
    return list(seen.values())


def compose(
    event: SlaNotice, lead: LeadCard, *, sender: str, public_url: str
) -> list[EmailMessage]:
    """One plain-text message per recipient of ``event``; none if it names no one."""
    return [
        _message(event, lead, recipient, index, sender=sender, public_url=public_url)
        for index, recipient in enumerate(recipients(event))
    ]


def _message(
    event: SlaNotice, lead: LeadCard, recipient: str, index: int, *, sender: str, public_url: str
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = recipient
    message["Subject"] = subject(event, lead, recipient)
    message["Date"] = format_datetime(_utc(event.time))
    message["Message-ID"] = f"<sla.{event.id}.{index}@{_domain(sender)}>"
    message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no out-of-office replies
    message["X-Leadflow-Lead"] = str(lead.lead_id)
    message.set_content(body(event, lead, recipient, public_url=public_url))
    return message


def subject(event: SlaNotice, lead: LeadCard, recipient: str) -> str:
    """In plain words: what happened, to which lead, and by when."""
    return _line(_subject(event, lead, recipient))


def _subject(event: SlaNotice, lead: LeadCard, recipient: str) -> str:
    data = event.data
    due = _clock_time(data.deadline, event.time)
    target = TARGET[data.clock]
    if isinstance(event, SlaStarted):
        return f"{_arrival(event, recipient)}: {lead.label} — {ACT[data.clock]} by {due}"
    if isinstance(event, SlaWarning):
        when = _relative(data.deadline, event.time)
        return f"Reminder: {lead.label} — {ACT[data.clock]} by {due} ({when})"
    if isinstance(event, SlaBreached):
        return f"Breached: {lead.label} — {target} was due at {due}"
    moving = "; moving it to another owner" if event.data.reassign else ""
    return f"Escalated: {lead.label} — no {target} since {due}{moving}"


def _arrival(event: SlaStarted, recipient: str) -> str:
    data = event.data
    if data.owner_email is None:
        return f"New lead in the {data.team} queue" if data.team else "New lead waiting"
    return f"New lead for {_who(data.owner_email, recipient)}"


def body(event: SlaNotice, lead: LeadCard, recipient: str, *, public_url: str) -> str:
    paragraphs = [
        _intro(event, recipient),
        _deadline(event),
        _late(event),
        _card(lead),
        f"Why it qualified and how it was routed: {explain_url(public_url, lead.lead_id)}",
        _clock(event),
    ]
    return "\n\n".join(p for p in paragraphs if p) + "\n\n— Leadflow\n"


def _intro(event: SlaNotice, recipient: str) -> str:
    data = event.data
    owner = _who(data.owner_email, recipient) if data.owner_email else None
    act, target = ACT[data.clock], TARGET[data.clock]
    if isinstance(event, SlaStarted):
        if owner is None:
            return f"A new lead is waiting in the {data.team or 'unassigned'} queue: {act}."
        return f"A new lead was routed to {owner}: {act} by the deadline."
    who = owner or f"the {data.team or 'unassigned'} queue"
    if isinstance(event, SlaWarning):
        return f"Reminder: this lead is still waiting for a {target} from {who}."
    if isinstance(event, SlaBreached):
        return f"SLA breached: no {target} from {who} by the deadline."
    then = (
        "Leadflow is moving the lead to another owner."
        if event.data.reassign
        else "You are told so that you can step in."
    )
    return f"Escalated ({_line(event.data.reason)}): no {target} from {who}. {then}"


def _deadline(event: SlaNotice) -> str:
    deadline = event.data.deadline
    if deadline is None:
        return "Deadline: none set."
    return f"Deadline: {_iso(deadline)} ({_relative(deadline, event.time)})."


def _late(event: SlaNotice) -> str:
    data = event.data
    if not data.late:
        return ""
    due = f"was due at {_iso(data.due_at)} and " if data.due_at else ""
    return (
        f"Late: this notice {due}went out {_duration(data.late_by_s)} late "
        "(the SLA monitor was down or behind)."
    )


def _card(lead: LeadCard) -> str:
    fields = {
        "Name": lead.name,
        "Title": lead.title,
        "Company": lead.company,
        "Phone": lead.phone,
        "Email": lead.email,
        "Source": lead.source,
        "Stage": lead.stage,
        "Qualified": _qualification(lead),
    }
    return "\n".join(f"{label + ':':<11}{_line(v)}" for label, v in fields.items() if v)


def _qualification(lead: LeadCard) -> str:
    parts = [
        f"fit grade {lead.fit_grade}" if lead.fit_grade else "",
        f"score {lead.score}" if lead.score is not None else "",
        f"reason: {lead.stage_reason}" if lead.stage_reason else "",
        f"rules: {', '.join(lead.rules)}" if lead.rules else "",
    ]
    return ", ".join(p for p in parts if p)


def _clock(event: SlaNotice) -> str:
    data = event.data
    facts = [
        f"policy {data.policy}",
        f"clock {TARGET[data.clock]}",
        f"tier {data.tier}" + (f" (at {data.at})" if data.at else ""),
        f"owner {data.owner_email}" if data.owner_email else "no owner yet",
        f"team {data.team}" if data.team else "",
    ]
    return "SLA: " + ", ".join(_line(f) for f in facts if f) + "."


def _who(owner_email: str | None, recipient: str) -> str:
    if owner_email and owner_email.strip().casefold() == recipient.casefold():
        return "you"
    return owner_email or "no one"


def _clock_time(moment: datetime | None, now: datetime) -> str:
    """ "14:30 UTC" on the event's own day, "Wed 25 Nov 14:30 UTC" on another."""
    if moment is None:
        return "no deadline"
    moment = _utc(moment)
    if moment.date() == _utc(now).date():
        return moment.strftime("%H:%M UTC")
    return moment.strftime("%a %d %b %H:%M UTC")


def _relative(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "no deadline"
    seconds = (_utc(moment) - _utc(now)).total_seconds()
    if abs(seconds) < 30:
        return "now"
    return f"in {_duration(seconds)}" if seconds > 0 else f"{_duration(-seconds)} ago"


def _duration(seconds: float) -> str:
    """ "45 s", "15 min", "2 h 5 min", "3 d 4 h": the two largest units that matter."""
    span = timedelta(seconds=round(seconds))
    hours, rest = divmod(span.seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if span.days:
        return f"{span.days} d" + (f" {hours} h" if hours else "")
    if hours:
        return f"{hours} h" + (f" {minutes} min" if minutes else "")
    return f"{minutes} min" if minutes else f"{secs} s"


def _iso(moment: datetime) -> str:
    return _utc(moment).isoformat(timespec="seconds").replace("+00:00", "Z")


def _utc(moment: datetime) -> datetime:
    """Aware in UTC; a naive time is taken as UTC already."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _line(text: str) -> str:
    """One line: a header cannot carry a line break, and a field must not forge another."""
    return " ".join(text.split())


def _domain(sender: str) -> str:
    address = parseaddr(sender)[1]
    return address.rpartition("@")[2] or "leadflow"
