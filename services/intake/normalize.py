"""Normalising what people type into forms: pure functions, no I/O (no DNS), no clock.

Each function takes the text as given and returns the canonical form, or raises ``ValueError``
with a message fit for the problem detail (the caller names the field).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import phonenumbers
import pycountry
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from shared.mailboxes import FREE_MAIL_DOMAINS

COUNTRY_ALIASES = {
    "uk": "GB",
    "u.k.": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "great britain": "GB",
    "u.s.": "US",
    "u.s.a.": "US",
    "america": "US",
    "deutschland": "DE",
    "south korea": "KR",
    "russia": "RU",
    "iran": "IR",
    "czech republic": "CZ",
    "holland": "NL",
    "türkiye": "TR",
    "turkey": "TR",
}


_PLAIN_EMAIL = re.compile(
    r"[a-z0-9_%+\-]+(?:\.[a-z0-9_%+\-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)
_SPECIAL_USE = frozenset(SPECIAL_USE_DOMAIN_NAMES)


def normalize_email(value: str) -> str:
    """Trimmed, syntax-checked, lower-cased; an internationalised domain in its ASCII (IDNA)
    form, so one mailbox has one spelling for deduplication."""
    text = value.strip()
    plain = text.lower()
    if _is_plain(plain):
        return plain  # what email_validator returns for it, ten times faster (tests compare)
    try:
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError as error:
        raise ValueError(f"is not an email address ({error})") from None
    return f"{checked.local_part}@{checked.ascii_domain}".lower()


def _is_plain(address: str) -> bool:
    """An everyday ASCII address that email_validator would accept unchanged (lower-cased)."""
    if len(address) > 254 or not _PLAIN_EMAIL.fullmatch(address):
        return False
    local, _, domain = address.partition("@")
    labels = domain.split(".")
    if any(label[2:4] == "--" for label in labels):
        return False  # "ab--" is reserved in IDNA (xn-- is Punycode): email_validator decides
    return len(local) <= 64 and not any(
        ".".join(labels[i:]) in _SPECIAL_USE for i in range(len(labels))
    )


def normalize_phone(value: str, region: str | None) -> str:
    """E.164 (``+14155552671``); a number without ``+`` is read in ``region``'s national plan."""
    text = value.strip()
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        hint = "" if region else " (write it with its country code, e.g. +44 …)"
        raise ValueError(f"is not a phone number{hint}") from None
    if not phonenumbers.is_possible_number(number):
        raise ValueError("is not a possible phone number (too short or too long)")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_country(value: str) -> str | None:
    """ISO 3166-1 alpha-2 from a code (alpha-2/alpha-3) or an English name; ``None`` when the
    text names no country we know (the raw submission keeps what was typed)."""
    text = " ".join(value.split())
    if not text:
        return None
    alias = COUNTRY_ALIASES.get(text.lower())
    if alias:
        return alias
    try:
        return str(pycountry.countries.lookup(text).alpha_2)
    except LookupError:
        return None


def domain_of_website(value: str) -> str | None:
    """``https://www.Example.com/about`` → ``example.com``; ``None`` if it is not a web address."""
    text = value.strip()
    if not text:
        return None
    if "://" not in text:
        text = "http://" + text
    try:
        host = urlsplit(text).hostname or ""
    except ValueError:
        return None
    host = host.rstrip(".").lower().removeprefix("www.")
    if "." not in host or not all(part for part in host.split(".")):
        return None
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return None


def company_domain(email: str | None, website: str | None) -> str | None:
    """The company's domain: the website's, else the email's unless it is a mailbox provider."""
    if website:
        domain = domain_of_website(website)
        if domain:
            return domain
    if email and "@" in email:
        domain = email.rpartition("@")[2]
        if domain not in FREE_MAIL_DOMAINS:
            return domain
    return None


def clean_name(value: str) -> str | None:
    """Inner runs of whitespace collapsed, ends trimmed; empty becomes ``None``."""
    text = " ".join(value.split())
    return text or None


def unstorable_text(payload: Any, path: str = "") -> str | None:
    """The path of the first string (key or value) a database cannot store — a NUL character,
    which PostgreSQL text and JSONB refuse, or text that is not valid Unicode — else ``None``."""
    for where, text in _strings(payload, path):
        if "\x00" in text:
            return where
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return where
    return None


def _strings(payload: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(payload, str):
        yield path or "body", payload
    elif isinstance(payload, dict):
        for key, value in payload.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str):
                yield where, key
            yield from _strings(value, where)
    elif isinstance(payload, list | tuple):
        for index, value in enumerate(payload):
            yield from _strings(value, f"{path}.{index}" if path else str(index))
