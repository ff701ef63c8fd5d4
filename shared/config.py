"""Settings, read once at start-up from ``LEADFLOW_…`` environment variables (nested: ``__``)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Self, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "LEADFLOW_"
_HOST_PORT = re.compile(r"^[A-Za-z0-9._\-\[\]:]+:\d{1,5}$")
KAFKA = "LEADFLOW_KAFKA__"
TLS_PROTOCOLS = ("SSL", "SASL_SSL")
SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")
Partitions = Annotated[int, Field(ge=1, le=1024)]
Replicas = Annotated[int, Field(ge=1, le=16)]


class Group(BaseModel):
    """A nested group of settings; a misspelt name is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(Group):
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


class KafkaSettings(Group):
    bootstrap_servers: str | None = Field(
        None,
        description="host:port[,host:port…]; unset in `leadflow dev` starts the embedded broker",
    )
    client_id: str = Field("leadflow", description="Client id the broker sees")
    idempotence: bool = Field(
        True,
        description="Idempotent producer (a retried batch is written once). `leadflow dev`'s "
        "embedded broker lacks it and turns it off; set false for `leadflow broker`",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL (SASL over TLS); see "
        "docs/kafka.md",
    )
    ssl_cafile: FilePath | None = Field(
        None,
        description="SSL, SASL_SSL: PEM file of the CAs that signed the brokers' certificates "
        "(unset: the system's trusted CAs)",
    )
    ssl_certfile: FilePath | None = Field(
        None, description="Mutual TLS: the client certificate, PEM (it may hold the key too)"
    )
    ssl_keyfile: FilePath | None = Field(
        None, description="Mutual TLS: the client's private key, PEM, unless in ssl_certfile"
    )
    ssl_key_password: SecretStr | None = Field(
        None, description="Mutual TLS: the password of an encrypted private key"
    )
    ssl_check_hostname: bool = Field(
        True, description="Check that a broker's certificate names the host connected to"
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = (
        Field(None, description="SASL_PLAINTEXT, SASL_SSL: how the client authenticates")
    )
    sasl_username: str | None = Field(None, description="PLAIN, SCRAM-SHA-*: the user name")
    sasl_password: SecretStr | None = Field(None, description="PLAIN, SCRAM-SHA-*: the password")
    sasl_oauth_token_url: str | None = Field(
        None,
        description="OAUTHBEARER: the OAuth 2.0 token endpoint; tokens come by the client "
        "credentials grant and are kept until shortly before they expire",
    )
    sasl_oauth_client_id: str | None = Field(None, description="OAUTHBEARER: the client id")
    sasl_oauth_client_secret: SecretStr | None = Field(
        None, description="OAUTHBEARER: the client secret (sent by HTTP Basic authentication)"
    )
    sasl_oauth_scope: str | None = Field(
        None, description="OAUTHBEARER: the scope to ask for, if the provider wants one"
    )
    create_topics: bool = Field(
        True,
        description="Create missing topics at start-up; false (a cluster that forbids it): "
        "check they exist and stop, naming those missing",
    )
    partitions: int = Field(
        4,
        ge=1,
        le=1024,
        description="Partitions of the topics Leadflow creates (the embedded broker's are 4, as "
        "tansu makes them)",
    )
    replication_factor: int = Field(
        1,
        ge=1,
        le=16,
        description="Replicas of the topics Leadflow creates (3 on a 3-broker cluster)",
    )
    topic_partitions: dict[str, Partitions] = Field(
        default_factory=dict,
        description="Partitions of one topic, by its name, over `partitions`: "
        '{"leadflow.intake": 12}',
    )
    topic_replication_factors: dict[str, Replicas] = Field(
        default_factory=dict,
        description="Replicas of one topic, by its name, over `replication_factor`: "
        '{"leadflow.dead-letter": 3}',
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
        "data arrives, so a long wait (docker-compose.yml and deploy/ set 500) costs no latency "
        "there and spares an idle consumer 50 fetches a second; the embedded broker notices data "
        "only at its next check within the wait (about 5 ms per hop with 20), so a longer wait "
        "costs latency there, a shorter one CPU",
    )
    sla_fetch_max_wait_ms: int = Field(
        500,
        ge=1,
        le=10_000,
        description="The same for the consumers of the SLA topic (routing's escalations, the SLA "
        "notifier): SLA events come far apart, and each fetch, answered or not, costs the "
        "broker and the consumer CPU",
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

    @field_validator("sasl_oauth_token_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("https://", "http://")):
            raise ValueError("must be an https:// URL")
        return value or None

    @model_validator(mode="after")
    def _security_complete(self) -> Self:
        """A mode's settings all there, and none that the mode would ignore."""
        if problem := _security_problem(self):
            raise PydanticCustomError("kafka_security", problem)
        return self

    def partitions_of(self, topic: str) -> int:
        return self.topic_partitions.get(topic, self.partitions)

    def replication_factor_of(self, topic: str) -> int:
        return self.topic_replication_factors.get(topic, self.replication_factor)


def _security_problem(kafka: KafkaSettings) -> str | None:
    protocol, mechanism = kafka.security_protocol, kafka.sasl_mechanism
    if protocol in SASL_PROTOCOLS and mechanism is None:
        return f"{KAFKA}SASL_MECHANISM is needed with {KAFKA}SECURITY_PROTOCOL={protocol}"
    if protocol not in SASL_PROTOCOLS and mechanism is not None:
        return f"{KAFKA}SASL_MECHANISM needs {KAFKA}SECURITY_PROTOCOL SASL_SSL or SASL_PLAINTEXT"
    tls = ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_key_password")
    if protocol not in TLS_PROTOCOLS and (ignored := [n for n in tls if getattr(kafka, n)]):
        names = ", ".join(KAFKA + name.upper() for name in ignored)
        return f"{names} need {KAFKA}SECURITY_PROTOCOL SSL or SASL_SSL"
    if (kafka.ssl_keyfile or kafka.ssl_key_password) and not kafka.ssl_certfile:
        return f"{KAFKA}SSL_CERTFILE is needed with a client key"
    needed = {
        None: (),
        "OAUTHBEARER": ("sasl_oauth_token_url", "sasl_oauth_client_id", "sasl_oauth_client_secret"),
    }.get(mechanism, ("sasl_username", "sasl_password"))
    if missing := [name for name in needed if not getattr(kafka, name)]:
        names = " and ".join(KAFKA + name.upper() for name in missing)
        verb = "is" if len(missing) == 1 else "are"
        return f"{names} {verb} needed with {KAFKA}SASL_MECHANISM={mechanism}"
    return None


class TopicSettings(Group):
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


class OutboxSettings(Group):
    batch_size: int = Field(
        5000, ge=1, le=10_000, description="Events the relay publishes per round"
    )
    poll_interval_ms: int = Field(
        100,
        ge=1,
        le=60_000,
        description="Relay poll when idle (commits in-process wake it at once)",
    )
    idle_poll_max_ms: int = Field(
        1000,
        ge=1,
        le=60_000,
        description="A service's relay (woken at once by its own process's commits) doubles its "
        "poll interval after each poll that finds nothing, up to this; `leadflow relay` always "
        "polls every `poll_interval_ms`",
    )
    max_backoff_s: float = Field(
        5.0, gt=0, description="Longest wait between tries while the broker is away"
    )
    retention_hours: float = Field(
        24.0, gt=0, description="Published rows are kept this long, to republish after broker loss"
    )
    relay_in_process: bool = Field(
        True,
        description="Each service process (intake, scoring, sla-monitor, webhooks) publishes the "
        "outbox itself; false: they only write it, and `leadflow relay` processes publish it "
        "(`leadflow dev` always publishes its own)",
    )
    relay_port: int = Field(8005, ge=1, le=65535, description="`leadflow relay` health and metrics")


class ConsumerSettings(Group):
    max_attempts: int = Field(3, ge=1, le=100, description="Attempts before the dead-letter topic")
    retry_backoff_s: float = Field(
        0.2, ge=0, description="Wait before retrying a failed message (times the attempt)"
    )
    max_batch: int = Field(500, ge=1, le=10_000, description="Messages applied per transaction")
    dedupe_retention_days: float = Field(
        14.0,
        ge=0,
        description="How long a consumer remembers an event it applied (`processed_events`, "
        "which makes a redelivery a no-op): keep it longer than the topics' retention, or an "
        "event redelivered from further back is applied twice. 0: kept forever",
    )
    retention_sweep_interval_s: float = Field(
        3600.0,
        gt=0,
        le=86_400,
        description="How often a process with consumers deletes their expired records "
        "(`dedupe_retention_days`)",
    )


class HttpSettings(Group):
    host: str = Field("127.0.0.1", description="Interface to listen on (0.0.0.0 in a container)")
    intake_port: int = Field(8000, ge=1, le=65535, description="`leadflow intake` (and `dev`)")
    scoring_port: int = Field(8001, ge=1, le=65535, description="`leadflow scoring` health/metrics")
    sla_monitor_port: int = Field(8002, ge=1, le=65535, description="`leadflow sla-monitor`")
    webhooks_port: int = Field(8003, ge=1, le=65535, description="`leadflow webhooks`")
    analytics_port: int = Field(8004, ge=1, le=65535, description="`leadflow analytics`")
    max_body_bytes: int = Field(64 * 1024, ge=1024, description="Larger request bodies get 413")
    public_url: str = Field(
        "http://127.0.0.1:8000",
        description="Where people and CRMs reach Leadflow: the links in SLA emails and in "
        "`lead.qualified` start with it",
    )


class TracingSettings(Group):
    otlp_endpoint: str | None = Field(
        None,
        description="OpenTelemetry collector's OTLP/HTTP address (http://collector:4318): spans "
        "are sent to <address>/v1/traces. Unset: tracing off, no span recorded "
        "(docs/monitoring.md)",
    )
    service_name: str | None = Field(
        None,
        description="The spans' service.name (unset: leadflow-<process>, e.g. leadflow-intake; "
        "`leadflow dev`: leadflow)",
    )
    sample_ratio: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Share of the traces begun here that are recorded; a trace continued from an "
        "incoming traceparent or an event keeps its caller's decision",
    )

    @field_validator("otlp_endpoint")
    @classmethod
    def _http_endpoint(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @property
    def traces_url(self) -> str | None:
        """Where the exporter posts: the address's ``/v1/traces`` (kept if it is already there)."""
        if self.otlp_endpoint is None:
            return None
        base = self.otlp_endpoint.rstrip("/")
        return base if base.endswith("/v1/traces") else f"{base}/v1/traces"


class Principal(Group):
    """A named person with their own secret key and roles (e.g. ``approver:marketing``)."""

    name: str = Field(pattern=r"^[A-Za-z0-9._@\-]{1,100}$", description="Who they are")
    key: SecretStr = Field(description="Their Bearer key (compared in constant time)")
    roles: list[str] = Field(default_factory=list, description="approver:marketing, approver:sales")


class AuthSettings(Group):
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
    auth: AuthSettings = AuthSettings()
    tracing: TracingSettings = TracingSettings()
    data_dir: Path = Field(
        Path(".leadflow"), description="`leadflow dev`: SQLite file, broker log, dev key"
    )
    log_level: str = Field("INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$", description="Log level")
    log_json: bool = Field(False, description="JSON log lines instead of console text")

    @model_validator(mode="after")
    def _topics_known(self) -> Self:
        """A topic named in a per-topic map is one of Leadflow's: a typo would be ignored."""
        for name in ("topic_partitions", "topic_replication_factors"):
            unknown = sorted(set(getattr(self.kafka, name)) - set(self.topics.all()))
            if unknown:
                raise PydanticCustomError(
                    "unknown_topic",
                    f"{KAFKA}{name.upper()} names {', '.join(unknown)}, not one of "
                    f"{', '.join(self.topics.all())}",
                )
        return self


S = TypeVar("S", bound=Settings)


class SettingsError(Exception):
    """A setting is invalid; the message names it the way it is set (the environment variable)."""


def describe_error(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        path = "__".join(str(part) for part in item["loc"]).upper()
        named = not path or item["msg"].startswith(ENV_PREFIX)  # a check across settings
        lines.append(item["msg"] if named else f"LEADFLOW_{path}: {item['msg']}")
    return "invalid settings:\n  " + "\n  ".join(lines)


def unknown_variables(environ: Mapping[str, str], cls: type[Settings] = Settings) -> list[str]:
    """``LEADFLOW_…`` variables that name no setting of ``cls``: a typo would otherwise be
    ignored."""
    unknown = []
    for name in environ:
        if not name.startswith(ENV_PREFIX):
            continue
        top, _, nested = name[len(ENV_PREFIX) :].lower().partition("__")
        field = cls.model_fields.get(top)
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


def load_settings(cls: type[S], /, *, strict: bool = True, **overrides: Any) -> S:
    """``cls`` from the environment and ``overrides``. Every service's settings are one class,
    put together by the composition root (``services.settings``): loaded ``strict``, a
    ``LEADFLOW_…`` variable that names none of them is refused. A service's own class (the
    common groups and its own) ignores the other services' variables, so it is loaded
    ``strict=False``, where the composition root has checked the environment already."""
    unknown = unknown_variables(os.environ, cls) if strict else []
    if unknown:
        raise SettingsError(
            "unknown settings: " + ", ".join(unknown) + " (see docs/configuration.md)"
        )
    try:
        return cls(**overrides)
    except ValidationError as error:
        raise SettingsError(describe_error(error)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The common settings (database, broker, …), for what needs no service's group."""
    return Settings()


def settings_reference(cls: type[Settings]) -> str:
    """A Markdown table of every setting of ``cls``: variable, default, description."""
    rows = ["| variable | default | description |", "|---|---|---|"]
    for name, field in cls.model_fields.items():
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
