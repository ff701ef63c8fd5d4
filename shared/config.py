"""Settings, read once at start-up from ``LEADFLOW_…`` environment variables (nested: ``__``)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "LEADFLOW_"
_HOST_PORT = re.compile(r"^[A-Za-z0-9._\-\[\]:]+:\d{1,5}$")


class _Group(BaseModel):
    """A nested group of settings; a misspelt name is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(_Group):
    url: str = Field(
        "sqlite+aiosqlite:///./.leadflow/leadflow.db",
        description="SQLAlchemy URL: postgresql+asyncpg://… or sqlite+aiosqlite:///path",
    )
    pool_size: int = Field(20, ge=1, le=500, description="Fixed connection pool size")
    max_overflow: int = Field(0, ge=0, le=500, description="Extra connections above pool_size")
    pool_timeout_s: float = Field(30.0, gt=0, description="Wait this long for a free connection")
    echo: bool = Field(
        False, description="Log every SQL statement, its parameters hidden (debugging only)"
    )

    @field_validator("url")
    @classmethod
    def _async_driver(cls, url: str) -> str:
        """Accept the common spellings and pin the async driver the code relies on."""
        for plain, driver in (
            ("postgres://", "postgresql+asyncpg://"),
            ("postgresql://", "postgresql+asyncpg://"),
            ("sqlite://", "sqlite+aiosqlite://"),
        ):
            if url.startswith(plain):
                return driver + url[len(plain) :]
        if url.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            return url
        raise ValueError("must start with postgresql+asyncpg:// or sqlite+aiosqlite://")

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")


class KafkaSettings(_Group):
    bootstrap_servers: str | None = Field(
        None,
        description="host:port[,host:port…]; unset in `leadflow dev` starts the embedded broker",
    )
    client_id: str = Field("leadflow", description="Client id the broker sees")
    idempotence: bool = Field(
        False, description="Idempotent producer: on for Apache Kafka, off for the embedded broker"
    )
    partitions: int = Field(
        4,
        ge=1,
        le=1024,
        description="Partitions of the topics Leadflow creates (`leadflow dev`'s embedded broker: "
        "1 unless set)",
    )
    replication_factor: int = Field(
        1,
        ge=1,
        le=16,
        description="Replicas of the topics Leadflow creates (3 on a 3-broker cluster)",
    )
    request_timeout_ms: int = Field(10_000, ge=1000, description="Broker request timeout")
    session_timeout_ms: int = Field(
        10_000, ge=1000, description="Consumer group session: a silent member is dropped after it"
    )
    heartbeat_interval_ms: int = Field(3_000, ge=100, description="Consumer heartbeat interval")
    fetch_max_wait_ms: int = Field(
        20,
        ge=1,
        le=10_000,
        description="Longest a consumer's fetch waits for data. Apache Kafka answers as soon as "
        "data arrives; the embedded broker notices it only at its next check within the wait "
        "(about 5 ms per hop with 20), so a longer wait costs latency there, a shorter one CPU",
    )
    sla_fetch_max_wait_ms: int = Field(
        500,
        ge=1,
        le=10_000,
        description="The same for routing's consumer of the SLA topic: escalations come minutes "
        "apart, and each fetch, answered or not, costs the broker and the consumer CPU",
    )
    commit_timeout_s: float = Field(10.0, gt=0, description="Upper bound on one offset commit")

    @field_validator("bootstrap_servers")
    @classmethod
    def _host_ports(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        for server in value.split(","):
            if not _HOST_PORT.match(server.strip()):
                raise ValueError(f"{server!r} is not host:port")
        return value


class TopicSettings(_Group):
    prefix: str = Field(
        "leadflow",
        pattern=r"^[A-Za-z0-9._\-]{1,100}$",
        description=(
            "Topic names: <prefix>.intake, .lifecycle, .sla, .dead-letter; consumer groups alike"
        ),
    )

    @property
    def intake(self) -> str:
        """Inquiries, activities and CRM outcomes, as they arrive."""
        return f"{self.prefix}.intake"

    @property
    def lifecycle(self) -> str:
        """Scores, stage changes and routing decisions."""
        return f"{self.prefix}.lifecycle"

    @property
    def sla(self) -> str:
        """SLA clocks: warnings, breaches, escalations."""
        return f"{self.prefix}.sla"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}.dead-letter"

    @property
    def sentinel(self) -> str:
        """Never named in a produce or fetch, so only its creator makes it: its absence means the
        broker lost its topics (the embedded broker keeps them in memory only)."""
        return f"{self.prefix}.incarnation"

    def all(self) -> list[str]:
        return [self.intake, self.lifecycle, self.sla, self.dead_letter, self.sentinel]


class OutboxSettings(_Group):
    batch_size: int = Field(
        5000, ge=1, le=10_000, description="Events the relay publishes per round"
    )
    poll_interval_ms: int = Field(
        100,
        ge=1,
        le=60_000,
        description="Relay poll when idle (commits in-process wake it at once)",
    )
    max_backoff_s: float = Field(
        5.0, gt=0, description="Longest wait between tries while the broker is away"
    )
    retention_hours: float = Field(
        24.0, gt=0, description="Published rows are kept this long, to republish after broker loss"
    )


class ConsumerSettings(_Group):
    max_attempts: int = Field(3, ge=1, le=100, description="Attempts before the dead-letter topic")
    retry_backoff_s: float = Field(
        0.2, ge=0, description="Wait before retrying a failed message (times the attempt)"
    )
    max_batch: int = Field(500, ge=1, le=10_000, description="Messages applied per transaction")


class HttpSettings(_Group):
    host: str = Field("127.0.0.1", description="Interface to listen on (0.0.0.0 in a container)")
    intake_port: int = Field(8000, ge=1, le=65535, description="`leadflow intake` (and `dev`)")
    scoring_port: int = Field(8001, ge=1, le=65535, description="`leadflow scoring` health/metrics")
    sla_monitor_port: int = Field(8002, ge=1, le=65535, description="`leadflow sla-monitor`")
    webhooks_port: int = Field(8003, ge=1, le=65535, description="`leadflow webhooks`")
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="Larger request bodies get 413")


class IntakeSettings(_Group):
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


class WebhookSettings(_Group):
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
        description="Personal fields left out of webhook payloads unless the event's data says "
        "`consent.share` is true",
    )


class PlatformForm(_Group):
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


class PlatformSettings(_Group):
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


class Principal(_Group):
    """A named person with their own secret key and roles (e.g. ``approver:marketing``)."""

    name: str = Field(pattern=r"^[A-Za-z0-9._@\-]{1,100}$", description="Who they are")
    key: SecretStr = Field(description="Their Bearer key (compared in constant time)")
    roles: list[str] = Field(default_factory=list, description="approver:marketing, approver:sales")


class AuthSettings(_Group):
    secret_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Bearer keys for read and admin endpoints (JSON list in the environment)",
    )
    principals: list[Principal] = Field(
        default_factory=list,
        description='Named people, each with a key and roles, as a JSON list: [{"name": "maria", '
        '"key": "…", "roles": ["approver:marketing"]}]. Their keys also open read and admin '
        "endpoints; approving a ruleset needs the approver role of that side",
    )


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", env_file=None, extra="forbid"
    )

    db: DatabaseSettings = DatabaseSettings()
    kafka: KafkaSettings = KafkaSettings()
    topics: TopicSettings = TopicSettings()
    outbox: OutboxSettings = OutboxSettings()
    consumer: ConsumerSettings = ConsumerSettings()
    http: HttpSettings = HttpSettings()
    intake: IntakeSettings = IntakeSettings()
    webhooks: WebhookSettings = WebhookSettings()
    auth: AuthSettings = AuthSettings()
    platforms: PlatformSettings = PlatformSettings()
    data_dir: Path = Field(
        Path(".leadflow"), description="`leadflow dev`: SQLite file, broker log, dev key"
    )
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$", description="Log level")
    log_json: bool = Field(False, description="JSON log lines instead of console text")


class SettingsError(Exception):
    """A setting is invalid; the message names it the way it is set (the environment variable)."""


def describe_error(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        path = "__".join(str(part) for part in item["loc"]).upper()
        lines.append(f"LEADFLOW_{path}: {item['msg']}")
    return "invalid settings:\n  " + "\n  ".join(lines)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """``LEADFLOW_…`` variables that name no setting: a typo would otherwise be ignored."""
    unknown = []
    for name in environ:
        if not name.startswith(ENV_PREFIX):
            continue
        top, _, nested = name[len(ENV_PREFIX) :].lower().partition("__")
        field = Settings.model_fields.get(top)
        if field is None:
            unknown.append(name)
            continue
        group = field.annotation
        if nested and not (
            isinstance(group, type)
            and issubclass(group, BaseModel)
            and nested.split("__")[0] in group.model_fields
        ):
            unknown.append(name)
    return sorted(unknown)


def load_settings(**overrides: object) -> Settings:
    unknown = unknown_variables(os.environ)
    if unknown:
        raise SettingsError(
            "unknown settings: " + ", ".join(unknown) + " (see docs/configuration.md)"
        )
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as error:
        raise SettingsError(describe_error(error)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def settings_reference() -> str:
    """A Markdown table of every setting: variable, default, description."""
    rows = ["| variable | default | description |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        group = field.annotation
        if isinstance(group, type) and issubclass(group, BaseModel):
            defaults = group()
            for sub, subfield in group.model_fields.items():
                variable = f"{ENV_PREFIX}{name}__{sub}".upper()
                rows.append(_row(variable, getattr(defaults, sub), subfield.description))
        else:
            rows.append(_row(f"{ENV_PREFIX}{name}".upper(), field.default, field.description))
    return "\n".join(rows) + "\n"


def _row(variable: str, default: object, description: str | None) -> str:
    shown = "(unset)" if default is None or default == [] else f"`{default}`"
    return f"| `{variable}` | {shown} | {description or ''} |"
