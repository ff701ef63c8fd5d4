"""``leadflow subscriptions create-crm|crm-fields|show|update`` for CRM subscriptions, against a
real database through CliRunner: settings and secrets from files, secrets never printed, bad
settings refused naming the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
import yaml
from typer.testing import CliRunner

from services.cli import app
from tests.support.common import Database

TOKEN, APP_SECRET = f"pat-eu1-{uuid4().hex}", f"app-{uuid4().hex}"
NEW_TOKEN = f"pat-eu1-{uuid4().hex}"
SECRETS = (TOKEN, APP_SECRET, NEW_TOKEN)
LOCAL = "http://127.0.0.1:9"


@pytest.fixture
def cli(db: Database, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("LEADFLOW_DB__URL", db.url)
    monkeypatch.setenv("LEADFLOW_WEBHOOKS__ALLOWED_NETWORKS", '["127.0.0.0/8"]')
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: tables show whole values
    return CliRunner()


def run(cli: CliRunner, *args: str, code: int = 0) -> str:
    result = cli.invoke(app, ["subscriptions", *args])
    assert result.exit_code == code, (result.stdout, result.stderr, result.exception)
    for secret in SECRETS:
        assert secret not in result.stdout and secret not in result.stderr, secret
    return result.stdout if code == 0 else result.stderr


def write(folder: Path, name: str, content: dict[str, Any]) -> str:
    path = folder / name
    path.write_text(yaml.safe_dump(content))
    return str(path)


def settings(**changes: Any) -> dict[str, Any]:
    return {
        "base_url": LOCAL,
        "owners": {"ana@example.com": "41629779"},
        "properties": {"attribution.utm.campaign": "leadflow_campaign"},
        **changes,
    }


def create(cli: CliRunner, folder: Path) -> dict[str, Any]:
    files = (
        "--settings",
        write(folder, "s.yaml", settings()),
        "--credentials",
        write(folder, "c.yaml", {"token": TOKEN, "app_secret": APP_SECRET}),
    )
    return json.loads(run(cli, "create-crm", "hubspot", *files, "--json"))  # type: ignore[no-any-return]


def test_create_crm_show_and_update_never_print_the_secrets(cli: CliRunner, tmp_path: Path) -> None:
    created = create(cli, tmp_path)

    sid = created["id"]
    assert UUID(sid) and "secret" not in created
    assert (created["kind"], created["url"]) == ("hubspot", LOCAL)
    assert created["event_types"] == ["lead.qualified"]
    assert created["credentials"] == ["app_secret", "token"]
    assert created["inbound_path"] == f"/v1/crm/hubspot/{sid}/events"
    assert created["hubspot"]["properties"]["attribution.utm.campaign"] == "leadflow_campaign"
    assert created["hubspot"]["properties"]["contact.email"] == "email"  # a default kept
    shown = json.loads(run(cli, "show", sid, "--json"))
    assert shown == created
    human = run(cli, "show", sid)
    assert "leadflow_campaign" in human and "41629779" in human

    flagged = json.loads(run(cli, "update", sid, "--consent-flag", "marketing", "--json"))
    assert flagged["consent_flags"] == ["marketing"]
    reset = json.loads(run(cli, "update", sid, "--default-consent", "--json"))
    assert reset["consent_flags"] is None

    other = settings(properties={"company.name": "company_name"})
    changed = json.loads(
        run(cli, "update", sid, "--settings", write(tmp_path, "s2.yaml", other), "--json")
    )
    assert changed["hubspot"]["properties"]["company.name"] == "company_name"
    assert "attribution.utm.campaign" not in changed["hubspot"]["properties"]
    token = write(tmp_path, "c2.yaml", {"token": NEW_TOKEN})
    rotated = json.loads(run(cli, "update", sid, "--credentials", token, "--json"))
    assert rotated["credentials"] == ["app_secret", "token"]
    assert json.loads(run(cli, "list", "--json")) == [json.loads(run(cli, "show", sid, "--json"))]


def test_create_crm_without_json_names_where_hubspot_calls_back(
    cli: CliRunner, tmp_path: Path
) -> None:
    files = (
        "--settings",
        write(tmp_path, "s.yaml", settings()),
        "--credentials",
        write(tmp_path, "c.yaml", {"token": TOKEN, "app_secret": APP_SECRET}),
    )

    said = run(cli, "create-crm", "hubspot", *files)

    [sid] = [s["id"] for s in json.loads(run(cli, "list", "--json"))]
    assert f"subscription {sid} (hubspot: {LOCAL})" in said
    assert f"/v1/crm/hubspot/{sid}/events" in said


def test_crm_fields_prints_the_catalogue(cli: CliRunner) -> None:
    catalogue = json.loads(run(cli, "crm-fields", "--json"))
    assert {"contact.email", "qualification.score", "attribution.utm.<key>"} <= set(catalogue)
    table = run(cli, "crm-fields")
    assert "contact.email" in table and "qualification.score" in table


def test_a_bad_mapping_is_refused_naming_the_field_and_the_option(
    cli: CliRunner, tmp_path: Path
) -> None:
    bad = write(tmp_path, "bad.yaml", settings(properties={"attribution.sorce": "source"}))
    credentials = write(tmp_path, "c.yaml", {"token": TOKEN, "app_secret": APP_SECRET})

    said = run(cli, "create-crm", "hubspot", "--settings", bad, "--credentials", credentials,
               code=2)  # fmt: skip

    assert "attribution.sorce" in said and "not a Leadflow field" in said
    assert "--settings" in said, said  # the option given, not the model's "--hubspot"
    assert json.loads(run(cli, "list", "--json")) == []


def test_missing_credentials_are_a_usage_error_not_a_crash(cli: CliRunner, tmp_path: Path) -> None:
    files = (
        "--settings",
        write(tmp_path, "s.yaml", settings()),
        "--credentials",
        write(tmp_path, "c.yaml", {"app_secret": APP_SECRET}),
    )

    said = run(cli, "create-crm", "hubspot", *files, code=2)

    assert "credentials.token" in said
    assert json.loads(run(cli, "list", "--json")) == []


def test_update_refuses_bad_settings_and_changes_nothing(cli: CliRunner, tmp_path: Path) -> None:
    created = create(cli, tmp_path)
    sid = created["id"]
    bad = write(tmp_path, "bad.yaml", settings(properties={"contact.title": "Job Title"}))

    said = run(cli, "update", sid, "--settings", bad, code=2)

    assert "contact.title" in said and "'Job Title'" in said
    webhook = json.loads(run(cli, "create", f"{LOCAL}/hook", "-e", "lead.*", "--json"))
    assert "only for a CRM subscription" in run(
        cli, "update", webhook["id"], "--settings", write(tmp_path, "s.yaml", settings()), code=2
    )
    assert json.loads(run(cli, "show", sid, "--json")) == created
