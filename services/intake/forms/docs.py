"""OpenAPI for ``/v1/leads``: the three body shapes, every problem answer, examples."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from services.intake.schemas import HubSpotSubmission, LeadSubmission
from shared.problems import PROBLEM_JSON, ProblemDetails

POST_DESCRIPTION = """\
Stored durably before the answer: a 202 means the lead is committed and will be scored.

**Bodies.** `application/json` as `LeadSubmission`, or HubSpot's forms submission shape (told
apart by its `fields` list); `application/x-www-form-urlencoded` or `multipart/form-data` from a
plain HTML form (`LeadForm`: known field names map onto the lead, every other field is kept in
`custom`). Emails, phones (E.164), countries (ISO 3166-1) are normalised; the raw body is kept.

**Keys.** A public key (`X-API-Key`, or the `key` query/form field; bound to the key's allowed
origins) or a secret key (`Authorization: Bearer`, for server-side backends). Public-key posts are
rate limited per key and per client address (429 with `Retry-After`).

**Forms.** A form post is answered `303 See Other` to the key's thank-you page (or the configured
one) unless it sends `Accept: application/json`.

**Duplicates.** The same person (email, else phone) gets one lead; each post is a new inquiry.
With an `Idempotency-Key`, a retry gets the first answer again (header `Idempotent-Replayed`).

**Spam.** A filled honeypot field (`_gotcha` by default) is answered like any other post, but the
inquiry is quarantined: stored and flagged, with a lead of its own, never routed.
"""

ERASE_DESCRIPTION = """\
Erases the lead's personal data (contact columns, every inquiry's body, personal keys in its
history) and its copies (activity and outcome properties, ad-platform details, personal data in
retained events and webhook messages, receivers' answers) and keeps anonymous funnel facts
(source, stage, scores, campaign, outcomes, timestamps). Emits `lead.erased` in the same
transaction. Erasing again answers the same and emits nothing.
"""

TITLES = {
    303: "See Other",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Invalid request",
    429: "Too Many Requests",
    503: "Service Unavailable",
}
EXAMPLES: dict[int, dict[str, Any]] = {
    401: {"detail": "send a public key as the X-API-Key header …", "field": "X-API-Key"},
    403: {"detail": "origin https://evil.example is not allowed for this key", "field": "Origin"},
    404: {"detail": "no lead 019a4a5e-7d1c-7c3a-9a51-3f1a7c0e2b11", "field": "lead_id"},
    413: {"detail": "the request body is larger than 65536 bytes"},
    415: {"detail": "send application/json, …", "field": "Content-Type"},
    422: {
        "detail": "email: is not an email address",
        "field": "email",
        "errors": [{"field": "email", "detail": "is not an email address", "in": "body"}],
    },
    429: {"detail": "more than 30 per 1 minute per ip; retry in 42 s", "field": "client"},
    503: {"detail": "the database is unavailable; nothing was stored, retry shortly"},
}


class LeadForm(BaseModel):
    """A plain HTML form's fields. Any other field is kept in ``custom``; a repeated field (a
    group of checkboxes) keeps every value."""

    model_config = ConfigDict(extra="allow")
    email: str | None = Field(None, max_length=320)
    phone: str | None = Field(None, max_length=40, description="Also `mobilephone`")
    first_name: str | None = Field(None, max_length=200, description="Also `firstname`")
    last_name: str | None = Field(None, max_length=200, description="Also `lastname`")
    name: str | None = Field(None, max_length=400, description="Split into first and last name")
    company: str | None = Field(None, max_length=300)
    title: str | None = Field(None, max_length=200, description="Also `job_title`, `jobtitle`")
    website: str | None = Field(None, max_length=2000)
    country: str | None = Field(None, max_length=100)
    source: str | None = Field(None, max_length=64)
    page_url: str | None = Field(None, max_length=2000)
    referrer: str | None = Field(None, max_length=2000)
    utm_source: str | None = Field(None, max_length=200)
    utm_medium: str | None = Field(None, max_length=200)
    utm_campaign: str | None = Field(None, max_length=200)
    utm_term: str | None = Field(None, max_length=200)
    utm_content: str | None = Field(None, max_length=200)
    consent: str | None = Field(None, description="A checkbox; `consent_<name>` for more of them")
    consent_text: str | None = Field(None, max_length=5000, description="The wording shown")
    key: str | None = Field(None, description="The public key (instead of the X-API-Key header)")
    gotcha: str | None = Field(
        None,
        alias="_gotcha",
        description="The honeypot (LEADFLOW_INTAKE__HONEYPOT_FIELD): hide it; bots fill it in",
    )


def problem(status: int) -> dict[str, Any]:
    example = {"type": "about:blank", "title": TITLES[status], "status": status}
    return {
        "description": f"{TITLES[status]} (RFC 9457 problem details)",
        "content": {
            PROBLEM_JSON: {
                "schema": {"$ref": "#/components/schemas/ProblemDetails"},
                "example": example | EXAMPLES.get(status, {}),
            }
        },
    }


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: problem(status) for status in statuses}


POST_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "Stored; the lead will be scored",
        "headers": {
            "Location": {"schema": {"type": "string"}, "description": "The lead"},
            "Idempotent-Replayed": {
                "schema": {"type": "string"},
                "description": "`true` on the replayed answer to a retried Idempotency-Key",
            },
        },
    },
    303: {
        "description": "A form post, stored: go to the thank-you page",
        "headers": {"Location": {"schema": {"type": "string"}}},
    },
    **responses(401, 403, 413, 415, 422),
    429: problem(429)
    | {"headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds"}}},
    503: problem(503)
    | {"headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds"}}},
}


def _example(model: type[BaseModel]) -> Any:
    return model.model_config["json_schema_extra"]["examples"][0]  # type: ignore[index]


FORM_EXAMPLE = {
    "email": "ada@example.com",
    "name": "Ada Lovelace",
    "company": "Analytical Engines",
    "utm_source": "newsletter",
    "consent": "on",
    "consent_text": "I agree to be contacted.",
    "team_size": "11-50",
    "key": "pk_…",
    "_gotcha": "",
}
REQUEST_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/LeadSubmission"},
                        {"$ref": "#/components/schemas/HubSpotSubmission"},
                    ]
                },
                "examples": {
                    "lead": {"value": _example(LeadSubmission)},
                    "hubspot": {"value": _example(HubSpotSubmission)},
                },
            },
            "application/x-www-form-urlencoded": {
                "schema": {"$ref": "#/components/schemas/LeadForm"},
                "example": FORM_EXAMPLE,
            },
            "multipart/form-data": {
                "schema": {"$ref": "#/components/schemas/LeadForm"},
                "example": FORM_EXAMPLE,
            },
        },
    }
}
EXTRA_MODELS: tuple[type[BaseModel], ...] = (
    LeadSubmission,
    HubSpotSubmission,
    LeadForm,
    ProblemDetails,
)


def extend_openapi(app: FastAPI) -> None:
    """Add the models the hand-written request body names to the generated document."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = generate()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for model in EXTRA_MODELS:
            schema = model.model_json_schema(
                ref_template="#/components/schemas/{model}", mode="validation"
            )
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


POST_PARAMETERS: list[dict[str, Any]] = [
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": "A retry with the same key gets the first answer (same status and body)",
        "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,200}$"},
    },
    {
        "name": "X-API-Key",
        "in": "header",
        "required": False,
        "description": "A public form key",
        "schema": {"type": "string"},
    },
    {
        "name": "key",
        "in": "query",
        "required": False,
        "description": "A public form key (for forms that cannot set headers)",
        "schema": {"type": "string"},
    },
]
