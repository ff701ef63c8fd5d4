"""The settings of every service as one set (services/settings.py), read from ``LEADFLOW_…``
variables; each service's group declared beside it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services.intake.settings import intake_config
from services.settings import load_settings
from services.webhooks.settings import WebhooksConfig
from shared import config
from shared.config import SettingsError


def test_defaults_are_the_embedded_setup() -> None:
    settings = load_settings()
    assert settings.db.is_sqlite
    assert settings.kafka.bootstrap_servers is None
    assert settings.kafka.idempotence is True  # Apache Kafka's; `leadflow dev` turns it off
    assert settings.kafka.security_protocol == "PLAINTEXT" and settings.kafka.create_topics
    assert settings.db.pool_size == 20 and settings.db.max_overflow == 0


def test_nested_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_DB__URL", "postgresql://u:p@db:5432/leads")
    monkeypatch.setenv("LEADFLOW_KAFKA__BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("LEADFLOW_KAFKA__IDEMPOTENCE", "false")
    monkeypatch.setenv("LEADFLOW_TOPICS__PREFIX", "acme")
    monkeypatch.setenv("LEADFLOW_AUTH__SECRET_KEYS", '["sk_one", "sk_two"]')
    settings = load_settings()
    assert settings.db.url == "postgresql+asyncpg://u:p@db:5432/leads"
    assert settings.kafka.bootstrap_servers == "k1:9092,k2:9092"
    assert settings.kafka.idempotence is False
    assert settings.topics.intake == "acme.intake"
    assert [k.get_secret_value() for k in settings.auth.secret_keys] == ["sk_one", "sk_two"]


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("LEADFLOW_DB__URL", "mysql://x", "LEADFLOW_DB__URL"),
        ("LEADFLOW_DB__POOL_SIZE", "0", "LEADFLOW_DB__POOL_SIZE"),
        ("LEADFLOW_KAFKA__BOOTSTRAP_SERVERS", "no-port-here", "LEADFLOW_KAFKA__BOOTSTRAP_SERVERS"),
        ("LEADFLOW_KAFKA__PARTITIONS", "many", "LEADFLOW_KAFKA__PARTITIONS"),
        ("LEADFLOW_HTTP__INTAKE_PORT", "70000", "LEADFLOW_HTTP__INTAKE_PORT"),
        ("LEADFLOW_TOPICS__PREFIX", "has space", "LEADFLOW_TOPICS__PREFIX"),
        ("LEADFLOW_LOG_LEVEL", "LOUD", "LEADFLOW_LOG_LEVEL"),
    ],
)
def test_a_bad_setting_fails_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert named in str(error.value)


def test_an_unknown_setting_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_DB__URLL", "sqlite:///x.db")
    with pytest.raises(SettingsError, match="LEADFLOW_DB__URLL"):
        load_settings()


def test_secrets_do_not_show_in_the_settings_repr() -> None:
    settings = load_settings(auth={"secret_keys": ["sk_very_secret"]})
    assert "sk_very_secret" not in repr(settings)


def test_a_misspelt_top_level_variable_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_LOG_JSN", "true")
    with pytest.raises(SettingsError, match="LEADFLOW_LOG_JSN"):
        load_settings()


def test_every_setting_is_documented_with_its_default() -> None:
    """docs/configuration.md is generated (`make docs`); this fails when it drifts."""
    from services.settings import settings_reference

    document = (Path(__file__).parents[3] / "docs" / "configuration.md").read_text()
    assert settings_reference() in document


def test_a_services_group_is_read_by_the_same_variable_wherever_it_is_declared(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Intake's and the webhook service's groups live beside their services; their variables
    keep their names, and a service's own settings ignore another service's."""
    monkeypatch.setenv("LEADFLOW_INTAKE__WRITERS", "7")
    monkeypatch.setenv("LEADFLOW_WEBHOOKS__CONCURRENCY", "9")
    settings = load_settings()
    assert settings.intake.writers == 7 and settings.webhooks.concurrency == 9
    webhooks = config.load_settings(WebhooksConfig, strict=False)
    assert webhooks.webhooks.concurrency == 9 and not hasattr(webhooks, "intake")
    with pytest.raises(SettingsError, match="LEADFLOW_INTAKE__WRITERS"):
        config.load_settings(WebhooksConfig)  # strict: only the whole set knows every variable


def test_settings_without_a_services_groups_are_refused_by_name() -> None:
    with pytest.raises(TypeError, match="services.settings"):
        intake_config(config.Settings())
    assert intake_config(load_settings()).intake.writers >= 1


def test_the_command_refuses_an_unknown_variable_before_any_command_runs(tmp_path: Path) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_")}
    environment["LEADFLOW_INTAKE__WRITTERS"] = "2"
    done = subprocess.run(
        [sys.executable, "-m", "services", "keys", "list"],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "unknown settings: LEADFLOW_INTAKE__WRITTERS" in done.stderr
