"""Ad-platform payloads to lead submissions: pure functions, no I/O.

Google Ads posts the lead's answers as ``user_column_data``; Meta's Graph API returns them as
``field_data``. Both become the fields of a ``LeadSubmission`` through a mapping — the platform's
default, overlaid with the form's own (configuration, see ``PlatformSettings``). A mapped name is a
lead field, ``custom.<name>``, or ``ignore``; a platform field with no mapping is kept as a custom
field under its own name.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from services.intake.schemas import LeadSubmission

GOOGLE_FIELDS: dict[str, str] = {
    "FULL_NAME": "full_name",
    "FIRST_NAME": "first_name",
    "LAST_NAME": "last_name",
    "EMAIL": "email",
    "WORK_EMAIL": "work_email",
    "PHONE_NUMBER": "phone",
    "WORK_PHONE": "work_phone",
    "COMPANY_NAME": "company",
    "JOB_TITLE": "title",
    "CITY": "city",
    "REGION": "region",
    "COUNTRY": "country",
    "POSTAL_CODE": "postal_code",
    "STREET_ADDRESS": "street_address",
}
META_FIELDS: dict[str, str] = {
    "full_name": "full_name",
    "first_name": "first_name",
    "last_name": "last_name",
    "email": "email",
    "work_email": "work_email",
    "phone_number": "phone",
    "work_phone_number": "work_phone",
    "company_name": "company",
    "job_title": "title",
    "city": "city",
    "state": "region",
    "province": "region",
    "country": "country",
    "zip_code": "postal_code",
    "post_code": "postal_code",
    "street_address": "street_address",
}
FALLBACKS = {"email": "work_email", "phone": "work_phone"}
"""A lead field filled from a second-best platform field when the form did not ask for it."""
CUSTOM_KEY_MAX = 100


class SubmissionInvalid(ValueError):
    """The platform's lead cannot become a submission; ``field`` names the culprit."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field, self.detail = field, detail


def lenient_json_text(raw: str) -> str:
    """Drop trailing commas before ``}`` or ``]`` outside strings (Google's sample has one)."""
    out: list[str] = []
    in_string = escaped = False
    pending_comma: int | None = None
    for char in raw:
        if in_string:
            out.append(char)
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if char in "}]" and pending_comma is not None:
            out[pending_comma] = ""
        if char == ",":
            pending_comma = len(out)
        elif not char.isspace():
            pending_comma = None
        if char == '"':
            in_string = True
        out.append(char)
    return "".join(out)


def find_google_key(body: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The key as sent and the spelling it was sent under (``google_key``, ``Google_key``…)."""
    spellings = [name for name in body if name.lower() == "google_key"]
    if len(spellings) > 1:
        raise SubmissionInvalid(spellings[1], "google_key is given more than once")
    if not spellings:
        return None, None
    value = body[spellings[0]]
    return (value if isinstance(value, str) else None), spellings[0]


def key_matches(presented: str, expected: str) -> bool:
    return hmac.compare_digest(presented.encode(), expected.encode())


def meta_signature_matches(secret: str, raw_body: bytes, header: str) -> bool:
    """``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>``."""
    scheme, _, presented = header.strip().partition("=")
    if scheme.lower() != "sha256" or not presented:
        return False
    expected = hmac.new(secret.encode(), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), presented.strip().lower().encode())


def google_answers(columns: object) -> list[tuple[list[str], str]]:
    """``user_column_data`` as (names to match, value): column_id first, then column_name."""
    if not isinstance(columns, list):
        raise SubmissionInvalid("user_column_data", "must be a list of columns")
    answers = []
    for index, column in enumerate(columns):
        if not isinstance(column, dict):
            raise SubmissionInvalid(f"user_column_data.{index}", "must be an object")
        names = [str(column[k]) for k in ("column_id", "column_name") if column.get(k)]
        value = column.get("string_value")
        if names and value is not None:
            answers.append((names, str(value)))
    return answers


def meta_answers(field_data: object) -> list[tuple[list[str], str]]:
    """Graph API ``field_data`` [{name, values}] as (names to match, value)."""
    if not isinstance(field_data, list):
        raise SubmissionInvalid("field_data", "must be a list")
    answers = []
    for item in field_data:
        if isinstance(item, dict) and item.get("name"):
            values = item.get("values") or []
            values = values if isinstance(values, list) else [values]
            answers.append(([str(item["name"])], ", ".join(str(v) for v in values)))
    return answers


def submission_from(
    answers: Iterable[tuple[list[str], str]],
    *,
    defaults: Mapping[str, str],
    overrides: Mapping[str, str],
    source: str,
    region: str | None = None,
) -> LeadSubmission:
    """Map the answers onto a submission; raise ``SubmissionInvalid`` naming the bad field."""
    fields: dict[str, str] = {}
    custom: dict[str, str] = {}
    for names, value in answers:
        target = _target(names, defaults, overrides)
        value = value.strip()
        if target == "ignore" or not value:
            continue
        if target.startswith("custom."):
            custom[target.removeprefix("custom.")[:CUSTOM_KEY_MAX]] = value
        else:
            fields.setdefault(target, value)
    return _build(fields, custom, source, region)


def _target(names: list[str], defaults: Mapping[str, str], overrides: Mapping[str, str]) -> str:
    for table in (overrides, defaults):
        for name in names:
            if name in table:
                return table[name]
    return "custom." + names[-1]


def _build(
    fields: dict[str, str], custom: dict[str, str], source: str, region: str | None
) -> LeadSubmission:
    for field, fallback in FALLBACKS.items():
        if field not in fields and fallback in fields:
            fields[field] = fields.pop(fallback)
    full_name = fields.pop("full_name", None)
    if full_name and "first_name" not in fields and "last_name" not in fields:
        first, _, last = full_name.rpartition(" ")
        fields["first_name"], fields["last_name"] = (first, last) if first else (last, "")
    known = set(LeadSubmission.model_fields) - {"custom", "source"}
    values: dict[str, Any] = {k: v for k, v in fields.items() if k in known and v}
    values["custom"] = custom | {k: v for k, v in fields.items() if k not in known}
    values["source"] = source
    first_error: tuple[str, str] | None = None
    for _ in range(len(values)):
        try:
            return LeadSubmission.model_validate(values, context={"region": region})
        except ValidationError as error:
            item = error.errors()[0]
            field = ".".join(str(part) for part in item["loc"]) or "user_column_data"
            first_error = first_error or (field, item["msg"].removeprefix("Value error, "))
            if not _demote(values, field):
                break
    assert first_error is not None
    raise SubmissionInvalid(*first_error)


def _demote(values: dict[str, Any], field: str) -> bool:
    """Be lenient: a lead field the platform filled badly is kept as a custom field instead.

    The lead is still refused if what is left cannot reach anyone (no email, no phone)."""
    if field not in values or field in ("custom", "source"):
        return False
    values["custom"] = values["custom"] | {field: values.pop(field)}
    return True


def retry_delay(attempts: int, schedule: list[float]) -> timedelta:
    """Wait before the next sweep of a fetch that has failed ``attempts`` times (≥ 1)."""
    return timedelta(seconds=schedule[min(attempts, len(schedule)) - 1])


def next_due(now: datetime, attempts: int, schedule: list[float]) -> datetime:
    return now + retry_delay(attempts, schedule)
