"""Wire models of the intake API.

``LeadSubmission`` is the one canonical shape: JSON bodies are it, web forms and HubSpot-shaped
bodies are mapped onto it (``services.intake.forms.parsing``). Validating it normalises it; the
phone's default region comes from the validation context (``{"region": "US"}``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from services.intake import normalize

Scalar = str | int | float | bool | None
CustomKey = Annotated[str, StringConstraints(min_length=1, max_length=100)]
CustomValue = Scalar | Annotated[list[Scalar], Field(max_length=50)]
Url = Annotated[str, StringConstraints(max_length=2000)]
Text = Annotated[str, StringConstraints(max_length=200)]


class Utm(BaseModel):
    """Campaign parameters of the page the form was on (``utm_source`` … in a form)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    source: Text | None = None
    medium: Text | None = None
    campaign: Text | None = None
    term: Text | None = None
    content: Text | None = None


class ConsentCommunication(BaseModel):
    """One subscription the person agreed (or not) to, as the form stated it."""

    model_config = ConfigDict(extra="forbid")
    value: bool
    subscription_type_id: int | str | None = None
    text: str | None = Field(None, max_length=5000)


class Consent(BaseModel):
    """Consent exactly as given: the wording shown, and each checkbox's answer."""

    model_config = ConfigDict(extra="forbid")
    text: str | None = Field(None, max_length=5000, description="The consent wording shown")
    flags: dict[CustomKey, bool] = Field(
        default_factory=dict, max_length=20, description="Each consent checkbox and its answer"
    )
    communications: list[ConsentCommunication] = Field(default_factory=list, max_length=20)


class LeadSubmission(BaseModel):
    """An inquiry from a web form or a server-side form backend (JSON)."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "email": "ada@example.com",
                    "phone": "+44 20 7946 0958",
                    "first_name": "Ada",
                    "last_name": "Lovelace",
                    "company": "Analytical Engines Ltd",
                    "website": "https://analytical-engines.example",
                    "country": "United Kingdom",
                    "source": "web",
                    "utm": {"source": "newsletter", "medium": "email", "campaign": "spring"},
                    "page_url": "https://www.example.com/pricing",
                    "referrer": "https://www.google.com/",
                    "consent": {"text": "I agree to be contacted.", "flags": {"contact": True}},
                    "custom": {"team_size": "11-50"},
                }
            ],
            # ``_derived``: an email or a phone number, and an email is an address.
            "anyOf": [
                {"required": ["email"], "properties": {"email": {"format": "email"}}},
                {"required": ["phone"], "properties": {"phone": {"minLength": 1}}},
            ],
        },
    )

    email: str | None = Field(None, max_length=320, description="Lower-cased, IDNA domain")
    phone: str | None = Field(None, max_length=40, description="Stored as E.164")
    first_name: str | None = Field(None, max_length=200)
    last_name: str | None = Field(None, max_length=200)
    company: str | None = Field(None, max_length=300)
    title: str | None = Field(None, max_length=200)
    website: Url | None = None
    country: str | None = Field(None, max_length=100, description="Stored as ISO 3166-1 alpha-2")
    company_domain: str | None = Field(
        None, max_length=253, description="Derived from website, else a non-mailbox email domain"
    )
    source: str = Field("web", min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9._\-]*$")
    utm: Utm | None = None
    page_url: Url | None = None
    referrer: Url | None = None
    consent: Consent | None = None
    custom: dict[CustomKey, CustomValue] = Field(
        default_factory=dict, max_length=50, description="Other form fields, kept"
    )

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return normalize.normalize_email(value) if value else None

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None, info: ValidationInfo) -> str | None:
        if not value:
            return None
        return normalize.normalize_phone(value, (info.context or {}).get("region"))

    @field_validator("first_name", "last_name", "company", "title")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return normalize.clean_name(value) if value else None

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        return normalize.normalize_country(value) if value else None

    @model_validator(mode="after")
    def _derived(self) -> LeadSubmission:
        if not self.email and not self.phone:
            raise ValueError("an email or a phone number is required")
        given = self.company_domain and normalize.domain_of_website(self.company_domain)
        self.company_domain = given or normalize.company_domain(self.email, self.website)
        return self


class HubSpotField(BaseModel):
    model_config = ConfigDict(extra="ignore")
    objectTypeId: str | None = None  # noqa: N815 (HubSpot's spelling)
    name: CustomKey
    value: Scalar = None


class HubSpotContext(BaseModel):
    model_config = ConfigDict(extra="ignore")
    hutk: str | None = Field(None, max_length=200)
    ipAddress: str | None = Field(None, max_length=100)  # noqa: N815
    pageUri: Url | None = None  # noqa: N815
    pageName: str | None = Field(None, max_length=500)  # noqa: N815


class HubSpotCommunication(BaseModel):
    model_config = ConfigDict(extra="ignore")
    value: bool
    subscriptionTypeId: int | str | None = None  # noqa: N815
    text: str | None = Field(None, max_length=5000)


class HubSpotConsent(BaseModel):
    model_config = ConfigDict(extra="ignore")
    consentToProcess: bool | None = None  # noqa: N815
    text: str | None = Field(None, max_length=5000)
    communications: list[HubSpotCommunication] = Field(default_factory=list, max_length=20)


class HubSpotLegalConsent(BaseModel):
    model_config = ConfigDict(extra="ignore")
    consent: HubSpotConsent | None = None


class HubSpotSubmission(BaseModel):
    """HubSpot's forms submission body (``fields`` + ``context`` + ``legalConsentOptions``)."""

    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "fields": [
                        {"objectTypeId": "0-1", "name": "email", "value": "grace@example.com"},
                        {"objectTypeId": "0-1", "name": "firstname", "value": "Grace"},
                    ],
                    "submittedAt": 1767225600000,
                    "context": {"pageUri": "https://www.example.com/demo", "pageName": "Demo"},
                    "legalConsentOptions": {
                        "consent": {
                            "consentToProcess": True,
                            "text": "I agree to allow Example to store my data.",
                            "communications": [
                                {"value": True, "subscriptionTypeId": 999, "text": "Newsletter"}
                            ],
                        }
                    },
                }
            ]
        },
    )

    fields: list[HubSpotField] = Field(min_length=1, max_length=200)
    submittedAt: int | str | None = None  # noqa: N815
    context: HubSpotContext | None = None
    legalConsentOptions: HubSpotLegalConsent | None = None  # noqa: N815


class LeadAccepted(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "lead_id": "019a4a5e-7d1c-7c3a-9a51-3f1a7c0e2b11",
                    "inquiry_id": "019a4a5e-7d1c-7c3a-9a51-3f1a7c0e2b12",
                    "new_lead": True,
                    "status": "accepted",
                }
            ]
        }
    )
    lead_id: UUID
    inquiry_id: UUID
    new_lead: bool = Field(description="False when the inquiry attached to an existing lead")
    status: str = "accepted"


class LeadPosted(LeadAccepted):
    """The answer to ``POST /v1/leads``."""

    kept_as_custom: list[str] = Field(
        default_factory=list,
        description="The posted fields a lead does not have, kept in the inquiry's `custom`",
    )


class HistoryEntry(BaseModel):
    occurred_at: datetime
    kind: str
    detail: dict[str, Any]


class InquiryView(BaseModel):
    """One inquiry as stored, normalised: where it came from and what else the form said."""

    id: UUID
    source: str
    received_at: datetime
    quarantine_reason: str | None = Field(None, description="Why it was held back, e.g. honeypot")
    title: str | None = None
    utm: Utm | None = None
    page_url: str | None = None
    referrer: str | None = None
    consent: Consent | None = Field(None, description="As given (none after erasure)")
    custom: dict[str, Any] = Field(
        default_factory=dict, description="The form's other fields, and a JSON body's unknown ones"
    )


class LeadView(BaseModel):
    id: UUID
    email: str | None
    phone: str | None
    first_name: str | None
    last_name: str | None
    company: str | None
    country: str | None = None
    company_domain: str | None = None
    source: str
    stage: str
    score: int | None
    ruleset: str | None
    scored_at: datetime | None
    quarantined: bool = Field(False, description="Spam: stored, not routed")
    erased_at: datetime | None = Field(None, description="Personal data erased at")
    created_at: datetime
    updated_at: datetime
    inquiries: list[InquiryView]
    history: list[HistoryEntry]


class LeadErasure(BaseModel):
    lead_id: UUID
    erased_at: datetime
    status: str = "erased"
