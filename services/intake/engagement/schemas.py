"""Wire models of engagement (activities) and CRM outcomes, and their pure checks."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import get_args
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, JsonValue
from pydantic.json_schema import JsonDict

from shared.events.engagement import OutcomeKind
from shared.params import Amount, Instant

Scalar = str | int | float | bool | None
CODE = r"^[a-z0-9][a-z0-9_.\-]{0,63}$"
ACTIVITY_KINDS = (
    "page_view",
    "pricing_page_visit",
    "email_open",
    "email_click",
    "content_download",
    "webinar_registered",
    "webinar_attended",
    "demo_request",
    "trial_signup",
    "meeting_booked",
)
"""Well-known activity types; others (snake_case) are accepted and passed on as they are."""
OUTCOMES = get_args(OutcomeKind)
NEEDS_REASON = {"rejected", "lost"}
NEEDS_AMOUNT = {"opportunity", "booked", "won"}
MAY_HAVE_AMOUNT = NEEDS_AMOUNT | {"lost"}
_GIVEN: JsonDict = {"not": {"type": "null"}}
_NONE: JsonDict = {"type": "null"}


def _case(outcomes: set[str], *, required: tuple[str, ...], **fields: JsonDict) -> JsonValue:
    names: list[JsonValue] = [*sorted(outcomes)]
    needed: list[JsonValue] = ["outcome", *required]
    properties: JsonDict = {"outcome": {"enum": names}, **fields}
    return {"required": needed, "properties": properties}


OUTCOME_CASES: list[JsonValue] = [
    _case({"responded", "accepted"}, required=(), amount=_NONE, currency=_NONE),
    _case({"rejected"}, required=("reason",), reason=_GIVEN, amount=_NONE, currency=_NONE),
    _case({"lost"}, required=("reason",), reason=_GIVEN, amount=_NONE, currency=_NONE),
    _case({"lost"}, required=("reason", "amount"), reason=_GIVEN, amount=_GIVEN),
    _case(NEEDS_AMOUNT, required=("amount",), amount=_GIVEN),
]
"""``outcome_problems``'s rules that a JSON Schema can state, in the document (``oneOf``, one
case per kind of outcome): a reason for rejected and lost, an amount for opportunity, booked
and won, none for the others but lost, and a currency only with an amount. (Not stateable:
``occurred_at`` in the past.)"""
FUTURE_TOLERANCE = timedelta(minutes=5)
EXTERNAL_ID: dict = {
    "min_length": 1,
    "max_length": 200,
    "pattern": r"^[\x21-\x7e]+$",
    "description": "The sender's own id for this report (a CRM event id): a repeat of it is "
    "answered with the first answer and records nothing (within intake.idempotency_hours)",
}


class ActivityIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "type": "pricing_page_visit",
                    "occurred_at": "2026-03-02T10:15:00Z",
                    "properties": {"url": "https://example.com/pricing", "seconds": 42},
                }
            ]
        },
    )

    type: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,63}$",
        description="What happened: " + ", ".join(ACTIVITY_KINDS) + ", or another snake_case name",
    )
    occurred_at: Instant | None = Field(None, description="When (default: on receipt)")
    properties: dict[str, Scalar] = Field(
        default_factory=dict, max_length=50, description="Facts about it (url, campaign, …)"
    )
    external_id: str | None = Field(None, **EXTERNAL_ID)


class OutcomeIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {"outcome": "accepted", "crm": "salesforce", "crm_id": "00Q5e00000AbCdE"},
                {"outcome": "rejected", "reason": "no_budget"},
                {"outcome": "booked", "amount": "12000.00", "currency": "EUR"},
            ],
            "oneOf": OUTCOME_CASES,
        },
    )

    outcome: OutcomeKind = Field(
        description="responded (first response), accepted, rejected (+ reason), opportunity "
        "(+ amount), booked or won (+ amount), lost (+ reason)"
    )
    occurred_at: Instant | None = Field(None, description="When (default: on receipt)")
    reason: str | None = Field(None, pattern=CODE, description="Reason code: rejected, lost")
    amount: Amount | None = Field(None, description="opportunity, booked, won, lost")
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$", description="ISO 4217 code")
    crm: str | None = Field(None, pattern=CODE, description="Which CRM reports it")
    crm_id: str | None = Field(
        None, min_length=1, max_length=200, description="The CRM's id for the lead; stored"
    )
    properties: dict[str, Scalar] = Field(default_factory=dict, max_length=50)
    external_id: str | None = Field(None, **EXTERNAL_ID)


class ActivityStored(BaseModel):
    activity_id: UUID
    lead_id: UUID
    event_id: UUID
    status: str = "accepted"


class OutcomeStored(BaseModel):
    outcome_id: UUID
    lead_id: UUID
    event_id: UUID
    status: str = "accepted"


def when_problems(occurred_at: datetime | None, now: datetime) -> list[tuple[str, str]]:
    if occurred_at is not None and occurred_at > now + FUTURE_TOLERANCE:
        return [("occurred_at", "is in the future")]
    return []


def outcome_problems(outcome: OutcomeIn, now: datetime) -> list[tuple[str, str]]:
    """What is wrong with an outcome beyond its field types, as (field, detail)."""
    problems = when_problems(outcome.occurred_at, now)
    if outcome.outcome in NEEDS_REASON and not outcome.reason:
        problems.append(("reason", f"a reason code is required for {outcome.outcome}"))
    if outcome.outcome in NEEDS_AMOUNT and outcome.amount is None:
        problems.append(("amount", f"an amount is required for {outcome.outcome}"))
    if outcome.amount is not None and outcome.outcome not in MAY_HAVE_AMOUNT:
        problems.append(("amount", f"{outcome.outcome} carries no amount"))
    if outcome.currency and outcome.amount is None:
        problems.append(("currency", "a currency needs an amount"))
    return problems
