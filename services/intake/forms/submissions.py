"""Reading a posted inquiry: the body by its media type, then validated and normalised.

Problems name the field as the client sent it; text a database cannot store (NUL) is refused.
"""

from __future__ import annotations

import hashlib
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import Request
from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException

from services.intake.forms.parsing import InputError, Parsed, parse_form, parse_json
from services.intake.normalize import unstorable_text
from services.intake.schemas import LeadSubmission
from services.intake.settings import IntakeConfig
from shared.problems import Problem

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"


async def read_body(request: Request, settings: IntakeConfig) -> Parsed:
    media = request.headers.get("content-type", JSON).split(";", 1)[0].strip().lower()
    honeypot = settings.intake.honeypot_field
    try:
        if media == JSON or media.endswith("+json"):
            parsed = parse_json(_json(await request.body()), honeypot=honeypot)
        elif media == FORM:
            parsed = parse_form(_urlencoded(await request.body()), honeypot=honeypot)
        elif media == MULTIPART:
            form = await _multipart(request)
            items = [(name, value) for name, value in form.multi_items() if isinstance(value, str)]
            parsed = parse_form(items, honeypot=honeypot)
        else:
            raise Problem(
                415,
                "Unsupported Media Type",
                f"send {JSON}, {FORM} or {MULTIPART}",
                field="Content-Type",
            )
    except InputError as error:
        raise invalid(error.field, error.detail) from None
    where = unstorable_text(parsed.raw)
    if where is not None:
        shown = where.replace("\x00", "\\u0000")
        raise invalid(shown, "contains a NUL character or invalid Unicode, which cannot be stored")
    return parsed


async def _multipart(request: Request) -> FormData:
    """The parts of a multipart body; one that cannot be parsed (no boundary, a broken part) is
    the client's error, answered 400 here (this route is served ahead of the app's handlers)."""
    try:
        return await request.form()
    except HTTPException as error:
        raise Problem(400, "Bad Request", f"multipart body: {error.detail}", field="body") from None


def unknown_fields(names: list[str]) -> Problem:
    """A strict key's answer to fields a lead does not have (``leadflow keys create --strict``)."""
    errors = [
        {"field": name, "detail": "Extra inputs are not permitted (strict key)", "in": "body"}
        for name in names
    ]
    return Problem(
        422,
        "Invalid request",
        f"{names[0]}: not a field of a lead; this key is strict, other keys keep it in custom",
        field=names[0],
        errors=errors,
    )


def validate(parsed: Parsed, settings: IntakeConfig) -> LeadSubmission:
    try:
        return LeadSubmission.model_validate(
            parsed.data, context={"region": settings.intake.default_region}
        )
    except ValidationError as error:
        errors = [
            {
                "field": ".".join(str(part) for part in parsed.where(tuple(item["loc"]))) or "body",
                "detail": item["msg"].removeprefix("Value error, "),
                "in": "body",
            }
            for item in error.errors()
        ]
        first = errors[0]
        raise Problem(
            422,
            "Invalid request",
            f"{first['field']}: {first['detail']}",
            field=first["field"],
            errors=errors,
        ) from None


def fingerprint(submission: LeadSubmission) -> str:
    body = orjson.dumps(submission.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(body).hexdigest()


def invalid(field: str, detail: str) -> Problem:
    return Problem(
        422,
        "Invalid request",
        f"{field}: {detail}",
        field=field,
        errors=[{"field": field, "detail": detail, "in": "body"}],
    )


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise InputError("body", f"is not valid JSON ({error})") from None


def _urlencoded(body: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise InputError("body", "is not UTF-8 form data") from None
