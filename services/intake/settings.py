"""Intake's settings: its groups ``intake`` (writers, rate limits, keys, Idempotency-Keys…)
and ``platforms`` (Google Ads, Meta), read from ``LEADFLOW_INTAKE__…`` and
``LEADFLOW_PLATFORMS__…`` (docs/configuration.md lists them all)."""

from __future__ import annotations

import re

from pydantic import Field, SecretStr, field_validator

from shared.config import Group, Settings

RATE_LIMIT_STORAGE_SCHEMES = ("memory", "redis", "rediss", "redis+unix")


class IntakeSettings(Group):
    writers: int = Field(
        4, ge=1, le=64, description="Transactions in flight at once for concurrent inquiries"
    )
    max_batch: int = Field(
        256, ge=1, le=5000, description="Most inquiries committed together in one transaction"
    )
    linger_ms: float = Field(
        40.0,
        ge=0,
        le=1000,
        description="While inquiries keep arriving, a transaction waits this long at most for "
        "more (fewer, larger transactions at moderate rates, and so in every later hop: the "
        "pipeline's CPU goes mostly per batch, not per lead); 0: never",
    )
    linger_batch: int = Field(
        64,
        ge=1,
        le=5000,
        description="A transaction stops waiting for more inquiries once it holds this many "
        "(those already queued still join, up to max_batch): larger ones save little more",
    )
    require_key: bool = Field(
        True,
        description="POST /v1/leads needs a public key (X-API-Key or `key`) or a secret key "
        "(Bearer); false accepts anonymous posts (development only)",
    )
    default_region: str | None = Field(
        "US",
        pattern=r"^[A-Z]{2}$",
        description="Phone numbers written without +country code are read in this region (ISO "
        "3166-1 alpha-2); unset: such numbers are refused",
    )
    thank_you_url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="Where a plain HTML form post is redirected (303) when its public key names "
        "no thank-you page; unset: the form gets the JSON answer",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed to post from a browser besides every public key's allowed "
        'origins (JSON list, e.g. ["https://www.example.com"])',
    )
    honeypot_field: str = Field(
        "_gotcha",
        min_length=1,
        max_length=100,
        description="A form field people never see: filled in, the inquiry is quarantined as spam",
    )
    rate_limit_per_key: str | None = Field(
        "600/minute",
        description="Posts per public key (`limits` notation, e.g. 600/minute); unset: no limit. "
        "Secret-key posts (server-side backends) are not limited",
    )
    rate_limit_per_ip: str | None = Field(
        "30/minute",
        description="Public-key and anonymous posts per client address; unset: no limit",
    )
    rate_limit_storage: SecretStr | None = Field(
        None,
        description="Where the rate limits count: unset (or `memory://`), in each intake "
        "process's memory, so N replicas allow N times the limits; a Redis URL "
        "(`redis://[:password@]host:6379/0`, `rediss://` for TLS, `redis+unix:///path?db=0`) "
        "that every replica shares: one limit across them. Never logged (it may hold a password)",
    )
    rate_limit_storage_timeout_s: float = Field(
        0.5,
        gt=0,
        le=30,
        description="A post waits this long at most for the Redis storage; longer counts as "
        "unreachable",
    )
    rate_limit_storage_retry_s: float = Field(
        5.0,
        ge=0,
        le=300,
        description="While the Redis storage is unreachable, posts are let through unlimited "
        "(a warning once per outage, leadflow_intake_rate_limit_unchecked_total counts them) "
        "and it is tried again after this long",
    )
    key_cache_s: float = Field(
        10.0, ge=0, le=3600, description="API keys are cached in process this long (revocation lag)"
    )
    idempotency_hours: float = Field(
        24.0, gt=0, description="An Idempotency-Key's first answer is replayed this long"
    )
    idempotency_prune_interval_s: float = Field(
        300.0,
        gt=0,
        le=86_400,
        description="How often the intake process deletes Idempotency-Key records older than "
        "`idempotency_hours`",
    )
    idempotency_prune_batch: int = Field(
        1000, ge=1, le=100_000, description="Idempotency-Key records deleted per transaction"
    )
    history_retention_days: float = Field(
        730.0,
        ge=0,
        description="Lead history entries (the timeline of GET /v1/leads/{id}) older than this "
        "are deleted; the lead, its stage and stage times stay. 0: kept forever",
    )
    raw_retention_days: float = Field(
        30.0,
        ge=0,
        description="An inquiry's body as posted (`raw`) is set to NULL this long after it "
        "arrived; the normalised submission stays. 0: kept forever",
    )
    retention_sweep_interval_s: float = Field(
        3600.0,
        gt=0,
        le=86_400,
        description="How often the intake process prunes lead history and raw bodies past "
        "their retention",
    )
    retention_sweep_batch: int = Field(
        1000, ge=1, le=100_000, description="Rows pruned per transaction by that sweep"
    )

    @field_validator("rate_limit_per_key", "rate_limit_per_ip")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        if not value:
            return None
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a rate limit like 600/minute") from None
        return value

    @field_validator("rate_limit_storage")
    @classmethod
    def _storage(cls, value: SecretStr | None) -> SecretStr | None:
        # The message names the scheme only: the URL may hold a password.
        if value is None or not value.get_secret_value():
            return None
        scheme, found, _ = value.get_secret_value().partition("://")
        if scheme.lower() not in RATE_LIMIT_STORAGE_SCHEMES:
            plain = found and re.fullmatch(r"[A-Za-z][A-Za-z0-9+.\-]{0,19}", scheme)
            given = f"{scheme}://" if plain else "a text without a scheme"
            redis = ", ".join(f"{s}://" for s in RATE_LIMIT_STORAGE_SCHEMES[1:])
            raise ValueError(f"memory:// or a Redis URL ({redis}), not {given}")
        return value


class PlatformForm(Group):
    """One ad-platform form: how its fields map onto a lead, and (Google Ads) its own key."""

    fields: dict[str, str] = Field(
        default_factory=dict,
        description="Platform field (Google column_id or column_name, Meta field name) → lead "
        "field (email, phone, first_name, last_name, full_name, company, title, …) or "
        "`custom.<name>`; `ignore` drops it. Merged over the platform's default mapping",
    )
    google_key: SecretStr | None = Field(
        None, description="Google Ads only: this form's webhook key (else the global key)"
    )
    source: str | None = Field(
        None,
        pattern=r"^[a-z0-9][a-z0-9._\-]*$",
        max_length=64,
        description="The inquiry source to record (default google-ads / meta)",
    )
    test: bool = Field(
        False,
        description="Every lead from this form is a test lead (flagged `is_test`): Meta's Lead "
        "Ads Testing Tool sends no test flag, so mark the forms you test with",
    )


class PlatformSettings(Group):
    google_ads_key: SecretStr | None = Field(
        None, description="Google Ads lead-form webhook key for forms without their own"
    )
    google_ads_forms: dict[str, PlatformForm] = Field(
        default_factory=dict,
        description='Per Google Ads form id (JSON): {"123": {"google_key": "…", "fields": '
        '{"BUDGET_QUESTION": "custom.budget"}}}',
    )
    meta_app_secret: SecretStr | None = Field(
        None, description="Meta app secret: verifies X-Hub-Signature-256 on lead notifications"
    )
    meta_verify_token: SecretStr | None = Field(
        None, description="Meta webhook verify token (the subscription handshake)"
    )
    meta_access_token: SecretStr | None = Field(
        None, description="Meta page access token used to fetch a lead's fields (never logged)"
    )
    meta_graph_url: str = Field(
        "https://graph.facebook.com/v21.0",
        pattern=r"^https?://",
        description="Graph API base URL; a lead is fetched from {base}/{leadgen_id}",
    )
    meta_forms: dict[str, PlatformForm] = Field(
        default_factory=dict,
        description='Per Meta form id (JSON): {"123": {"fields": {"budget": "custom.budget"}}}',
    )
    fetch_timeout_s: float = Field(10.0, gt=0, le=120, description="One Graph API request")
    fetch_attempts: int = Field(
        3, ge=1, le=10, description="Graph API tries per sweep before the fetch is rescheduled"
    )
    fetch_backoff_s: float = Field(
        0.5, ge=0, le=60, description="Wait between those tries (doubling each time)"
    )
    retry_schedule_s: list[float] = Field(
        [30, 120, 600, 1800, 3600],
        min_length=1,
        description="Wait before each later sweep of a failing fetch; the last wait repeats "
        "forever (a lead is never dropped)",
    )
    sweep_interval_s: float = Field(
        5.0, gt=0, le=3600, description="Pending-fetch sweeper poll interval"
    )
    sweep_batch: int = Field(20, ge=1, le=1000, description="Pending fetches claimed per sweep")
    lease_s: float = Field(
        120.0, gt=0, description="A claimed fetch is another replica's to retry after this"
    )


class IntakeConfig(Settings):
    """The common settings and intake's own."""

    intake: IntakeSettings = IntakeSettings()
    platforms: PlatformSettings = PlatformSettings()


def intake_config(settings: Settings) -> IntakeConfig:
    """``settings`` as intake reads them: loaded by ``services.settings``, they hold its groups."""
    if not isinstance(settings, IntakeConfig):
        raise TypeError("settings without intake's groups: load them with services.settings")
    return settings
