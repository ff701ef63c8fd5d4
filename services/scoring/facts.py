"""What the rules can see of a lead: ``lead`` (who they are) and ``engagement`` (what they did).

Every field is always present, so a condition never fails on a missing one: text is "" when
unknown (and lower-case, except names and company), numbers are 0, ``custom`` holds the form's
other fields as given. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.mailboxes import FREE_MAIL_DOMAINS

ACTIVITY_KINDS = (
    "page_view",
    "pricing_page_visit",
    "content_download",
    "email_open",
    "email_click",
    "form_submit",
    "webinar_registered",
    "webinar_attended",
    "demo_request",
    "trial_signup",
    "meeting_booked",
    "unsubscribe",
    "email_bounce",
)
"""Known kinds; ``engagement.counts`` always has each of them (and every kind a ruleset names)."""

REQUIRABLE = frozenset(
    {"email", "phone", "first_name", "last_name", "company", "title", "country", "industry"}
    | {"employees"}
)
NO_ACTIVITY_DAYS = 36500.0
"""``engagement.days_since_last`` when the lead has done nothing yet."""


@dataclass(frozen=True, slots=True)
class LeadFacts:
    email: str = ""
    phone: str = ""
    first_name: str = ""
    last_name: str = ""
    company: str = ""
    title: str = ""
    country: str = ""
    industry: str = ""
    employees: int = 0
    source: str = ""
    stage: str = "inquiry"
    custom: Mapping[str, Any] = field(default_factory=dict)

    @property
    def email_domain(self) -> str:
        return self.email.rpartition("@")[2] if "@" in self.email else ""

    def has(self, name: str) -> bool:
        return bool(getattr(self, name))

    def as_cel(self) -> dict[str, Any]:
        domain = self.email_domain
        return {
            "email": self.email,
            "email_domain": domain,
            "free_mail": domain in FREE_MAIL_DOMAINS,
            "phone": self.phone,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "company": self.company,
            "title": self.title,
            "country": self.country,
            "industry": self.industry,
            "employees": self.employees,
            "source": self.source,
            "stage": self.stage,
            "custom": dict(self.custom),
        }


@dataclass(frozen=True, slots=True)
class Activity:
    kind: str
    occurred_at: datetime


def facts_of(lead: Any, submissions: Iterable[Mapping[str, Any]] = ()) -> LeadFacts:
    """A lead row plus its inquiries' submissions (oldest first; later answers win)."""
    merged: dict[str, Any] = {}
    for submission in submissions:
        merged.update({k: v for k, v in submission.get("custom", {}).items() if v is not None})
        merged.update({k: v for k, v in submission.items() if k != "custom" and v is not None})
    known = {"email", "phone", "first_name", "last_name", "company", "title", "source"}
    known |= {"country", "industry", "employees"}
    return LeadFacts(
        email=(lead.email or "").lower(),
        phone=lead.phone or "",
        first_name=lead.first_name or "",
        last_name=lead.last_name or "",
        company=lead.company or "",
        title=str(merged.get("title") or "").lower(),
        country=str(merged.get("country") or "").upper(),
        industry=str(merged.get("industry") or "").lower(),
        employees=_int(merged.get("employees") or merged.get("company_size")),
        source=lead.source or "",
        stage=lead.stage or "inquiry",
        custom={k: v for k, v in merged.items() if k not in known},
    )


def _int(value: Any) -> int:
    try:
        return max(int(float(value)), 0)
    except (TypeError, ValueError):
        return 0


SAMPLE_LEAD = LeadFacts(
    email="ada@example.com",
    phone="+4930123456",
    first_name="Ada",
    last_name="Lovelace",
    company="Analytical Engines",
    title="vp engineering",
    country="DE",
    industry="software",
    employees=250,
    source="web",
    custom={"plan": "team"},
)


def sample_variables(kinds: Iterable[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Complete and empty facts, for type-checking conditions before they go live."""
    counts = dict.fromkeys(kinds, 1)
    full = {
        "lead": SAMPLE_LEAD.as_cel(),
        "engagement": {"score": 10, "counts": counts, "days_since_last": 1.5},
    }
    empty = {
        "lead": LeadFacts().as_cel(),
        "engagement": {
            "score": 0,
            "counts": dict.fromkeys(kinds, 0),
            "days_since_last": NO_ACTIVITY_DAYS,
        },
    }
    return full, empty
