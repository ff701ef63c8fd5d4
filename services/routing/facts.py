"""What routing conditions can see of a lead: the ``lead`` map. Every key is always present
(text "" when unknown, numbers 0), so a condition never fails on a missing field. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from shared.conditions import merged_answers
from shared.mailboxes import FREE_MAIL_DOMAINS

_ALIASES = {
    "region": ("region", "state", "province"),
    "postal_code": ("postal_code", "zip", "postcode"),
    "language": ("language", "lang", "locale"),
    "employees": ("employees", "company_size"),
    "website": ("website", "domain", "url"),
}
_TEXT = ("title", "country", "industry", "product", "region", "postal_code", "language", "website")


def routing_facts(lead: Any, submissions: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """A lead row plus its inquiries' submissions, oldest first (later answers win)."""
    merged = merged_answers(submissions)
    for name, aliases in _ALIASES.items():
        if name not in merged:
            merged[name] = next((merged[a] for a in aliases if a in merged), None)
    email = (getattr(lead, "email", None) or "").lower()
    domain = email.rpartition("@")[2] if "@" in email else ""
    text = {name: str(merged.get(name) or "").strip() for name in _TEXT}
    return {
        "title": text["title"],
        "country": text["country"].upper(),
        "industry": text["industry"].lower(),
        "product": text["product"].lower(),
        "region": text["region"].upper(),
        "postal_code": text["postal_code"],
        "language": text["language"].lower()[:2],
        "website": text["website"],
        "email": email,
        "email_domain": domain,
        "free_mail": domain in FREE_MAIL_DOMAINS,
        "company": getattr(lead, "company", None) or "",
        "employees": _int(merged.get("employees")),
        "source": getattr(lead, "source", None) or "",
        "stage": getattr(lead, "stage", None) or "",
        "score": int(getattr(lead, "score", None) or 0),
    }


def account_domain(facts: Mapping[str, Any]) -> str:
    """The domain to match accounts on: the website's, else a non-free-mail email's."""
    if facts["website"]:
        return str(facts["website"])
    return "" if facts["free_mail"] else str(facts["email_domain"])


def _int(value: Any) -> int:
    try:
        return max(int(float(value)), 0)
    except (TypeError, ValueError):
        return 0


class _Row:
    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


EMPTY_FACTS = routing_facts(_Row())
SAMPLE_FACTS = routing_facts(
    _Row(
        email="ada@example.com", company="Analytical Engines", source="web", stage="mql", score=70
    ),
    [
        {
            "title": "VP Engineering",
            "custom": {
                "country": "DE",
                "region": "BE",
                "postal_code": "10115",
                "language": "de",
                "employees": 250,
                "industry": "software",
                "product": "platform",
                "website": "example.com",
            },
        }
    ],
)
