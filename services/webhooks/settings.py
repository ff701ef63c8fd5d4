"""The webhook service's settings, read from ``LEADFLOW_WEBHOOKS__…`` (docs/configuration.md lists
them all)."""

from __future__ import annotations

from pydantic import Field

from shared.config import Group, Settings


class WebhookSettings(Group):
    retry_schedule_s: list[float] = Field(
        [0, 5, 300, 1800, 7200, 18000, 36000, 36000],
        min_length=1,
        description="Wait before each attempt (Svix's schedule); after the last the message is "
        "exhausted",
    )
    jitter: float = Field(0.2, ge=0, le=1, description="Each wait varies by up to ± this share")
    timeout_s: float = Field(15.0, gt=0, le=300, description="An attempt slower than this fails")
    max_retry_after_s: float = Field(
        86_400, gt=0, description="Longest `Retry-After` honoured (longer values are capped)"
    )
    max_response_bytes: int = Field(
        64 * 1024, ge=0, description="Response body read at most this far, then dropped"
    )
    excerpt_chars: int = Field(
        1000, ge=0, le=64 * 1024, description="Response text kept per attempt in the log"
    )
    concurrency: int = Field(
        256,
        ge=1,
        le=4096,
        description="Deliveries in flight per process (one endpoint holds at most twice its own "
        "limit, so a dead CRM leaves the others room)",
    )
    per_endpoint_concurrency: int = Field(
        32,
        ge=1,
        le=1024,
        description="Requests in flight to one subscription per process: it receives at most "
        "this many per response time (32 / 50 ms = 640 deliveries/s); lower it for a CRM that "
        "cannot take that many at once",
    )
    breaker_failures: int = Field(
        5, ge=1, description="Consecutive failures that open an endpoint's circuit"
    )
    breaker_cooldown_s: float = Field(
        30.0, gt=0, description="First pause of an open circuit (doubles, up to 10 minutes)"
    )
    disable_after_hours: float = Field(
        120.0, gt=0, description="An endpoint failing without a success this long is disabled"
    )
    rotation_overlap_hours: float = Field(
        24.0, ge=0, description="The previous secret keeps signing this long after a rotation"
    )
    poll_interval_ms: int = Field(
        250, ge=1, le=60_000, description="Dispatcher poll when idle (new messages wake it at once)"
    )
    allowed_networks: list[str] = Field(
        default_factory=list,
        description="CIDRs webhook targets may resolve to although not public, e.g. "
        '["127.0.0.0/8"] (JSON list); loopback, private, link-local and metadata are refused',
    )
    consent_fields: list[str] = Field(
        ["email", "phone", "first_name", "last_name", "title", "ip_address", "custom"],
        description="The lead's personal fields, left out of what a subscriber receives unless "
        "the lead's consent agrees to one of the subscription's consent flags",
    )
    consent_flags: list[str] = Field(
        ["consent", "contact", "consent_contact", "consentToProcess"],
        description="A subscription's consent flags when it names none: a consent checkbox "
        "answered true (a form's `consent_…` field, a JSON `consent.flags` key, HubSpot's "
        "`consentToProcess`), or `communication:<subscription type id>`",
    )
    crm_linger_ms: int = Field(
        1000,
        ge=0,
        le=60_000,
        description="A CRM subscription's batch waits at most this long for more leads before it "
        "goes out less than full (a full batch goes at once)",
    )
    attempts_retention_days: float = Field(
        30.0,
        ge=0,
        description="Delivery attempts (the delivery log, with the receivers' answers) older "
        "than this are deleted. 0: kept forever",
    )
    delivered_retention_days: float = Field(
        30.0,
        ge=0,
        description="Delivered messages (the body as sent) are deleted this long after "
        "delivery, with their attempts; pending and exhausted ones stay (for replay). "
        "0: kept forever",
    )
    retention_sweep_interval_s: float = Field(
        3600.0,
        gt=0,
        le=86_400,
        description="How often the webhook process prunes attempts and delivered messages",
    )
    retention_sweep_batch: int = Field(
        1000, ge=1, le=100_000, description="Rows pruned per transaction by that sweep"
    )


class WebhooksConfig(Settings):
    """The common settings and the webhook service's own."""

    webhooks: WebhookSettings = WebhookSettings()


def webhooks_config(settings: Settings) -> WebhooksConfig:
    """``settings`` as the webhook service reads them: loaded by ``services.settings``, they hold
    its group."""
    if not isinstance(settings, WebhooksConfig):
        raise TypeError("settings without the webhooks group: load them with services.settings")
    return settings
