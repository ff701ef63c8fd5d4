"""The SLA monitor's settings, read from ``LEADFLOW_SLA__…`` and ``LEADFLOW_SMTP__…``
(docs/configuration.md lists them all)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from shared.config import Group, Settings


class SlaSettings(Group):
    sweep_batch: int = Field(
        500, ge=1, le=10_000, description="Due clocks fired per sweep transaction"
    )
    sweep_interval_ms: int = Field(
        250,
        ge=10,
        le=60_000,
        description="Longest wait between sweeps when nothing is due sooner (a clock opened in "
        "this process wakes the sweep at once)",
    )
    late_after_s: float = Field(
        5.0,
        ge=0,
        description="A tier firing this long after its due time is marked late (the monitor was "
        "down or behind)",
    )
    session_secret: SecretStr = Field(
        SecretStr(""),
        description="Signs the ops board's session cookies (at least 32 characters; the same on "
        "every replica). Empty: derived from the configured secret and principal keys, so "
        "replicas agree and changing any of those keys signs everyone out",
    )
    session_hours: float = Field(
        12.0, gt=0, le=24 * 30, description="An ops board session lasts this long after sign-in"
    )

    @field_validator("session_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value() and len(value.get_secret_value()) < 32:
            raise ValueError("must be empty or at least 32 characters")
        return value


class SmtpSettings(Group):
    host: str = Field("", description="SMTP server; empty: no email is sent (logged instead)")
    port: int = Field(587, ge=1, le=65535, description="SMTP port (465: implicit TLS)")
    tls: str = Field(
        "starttls",
        pattern=r"^(starttls|implicit|none)$",
        description="starttls (upgrade on 587), implicit (TLS from the start, 465), none",
    )
    username: str = Field("", description="SMTP user; empty: no login")
    password: SecretStr = Field(SecretStr(""), description="SMTP password")
    sender: str = Field("leadflow@localhost", description="The From address of notifications")
    timeout_s: float = Field(15.0, gt=0, le=300, description="One SMTP conversation's limit")


class SlaConfig(Settings):
    """The common settings and the SLA monitor's own."""

    sla: SlaSettings = SlaSettings()
    smtp: SmtpSettings = SmtpSettings()


def sla_config(settings: Settings) -> SlaConfig:
    """``settings`` as the SLA monitor reads them: loaded by ``services.settings``, they hold its
    groups."""
    if not isinstance(settings, SlaConfig):
        raise TypeError("settings without the sla group: load them with services.settings")
    return settings
