"""The placeholder ruleset: a few fixed fit rules, until the co-signed CEL rules engine replaces it.

Pure: facts in, score out; no I/O, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass

RULESET = "placeholder-1"

FREE_MAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "hotmail.com",
        "outlook.com",
        "live.com",
        "icloud.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "gmx.de",
        "web.de",
        "mail.ru",
    }
)


@dataclass(frozen=True, slots=True)
class LeadFacts:
    email: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    company: str | None

    @property
    def email_domain(self) -> str | None:
        return self.email.rpartition("@")[2] if self.email else None


@dataclass(frozen=True, slots=True)
class Score:
    points: int
    fired: tuple[str, ...]


RULES: tuple[tuple[str, int], ...] = (
    ("business-email", 20),
    ("company-given", 10),
    ("phone-given", 10),
    ("full-name", 5),
)


def _fires(rule: str, facts: LeadFacts) -> bool:
    if rule == "business-email":
        return facts.email_domain is not None and facts.email_domain not in FREE_MAIL_DOMAINS
    if rule == "company-given":
        return bool(facts.company)
    if rule == "phone-given":
        return bool(facts.phone)
    if rule == "full-name":
        return bool(facts.first_name and facts.last_name)
    raise KeyError(rule)


def score(facts: LeadFacts) -> Score:
    fired = tuple(rule for rule, _ in RULES if _fires(rule, facts))
    points = sum(value for rule, value in RULES if rule in fired)
    return Score(points=points, fired=fired)
