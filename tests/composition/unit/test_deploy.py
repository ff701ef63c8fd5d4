"""What can be checked of the deployment files without Docker: docker-compose.yml, deploy/Dockerfile
and .dockerignore agree with the CLI, the settings model and each other."""

from __future__ import annotations

import base64
import json
import os
import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from services.cli import app
from services.settings import LeadflowSettings, load_settings
from shared.config import HttpSettings, Settings

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

# Long-running service containers and the HttpSettings field holding each one's port.
SERVICE_PORTS = {
    "intake": "intake_port",
    "scoring": "scoring_port",
    "sla-monitor": "sla_monitor_port",
    "webhooks": "webhooks_port",
    "analytics": "analytics_port",
}
LEADFLOW_CONTAINERS = ["migrate", *SERVICE_PORTS]
# Values for the ${…} interpolations, as an operator would export them.
SAMPLE_KEY = "sample-secret-key_0123456789"
SAMPLES = {"LEADFLOW_AUTH__SECRET_KEYS": f'["{SAMPLE_KEY}"]'}
HEALTHY = "service_healthy"
COMPLETED = "service_completed_successfully"

_INTERPOLATION = re.compile(
    r"\$(?:\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*)|(?P<dollar>\$))"
)


# --- helpers -------------------------------------------------------------------------------------


@cache
def _compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(document, dict)
    return document


def _services() -> dict[str, Any]:
    services = _compose()["services"]
    assert isinstance(services, dict)
    return services


def _service(name: str) -> dict[str, Any]:
    assert name in _services(), f"docker-compose.yml has no service {name!r}"
    service = _services()[name]
    assert isinstance(service, dict)
    return service


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """The environment as written (list or mapping form), values uninterpolated."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, None) for item in raw)
    env: dict[str, str] = {}
    for key, value in raw.items():
        # Compose rejects YAML booleans here ("true" must be quoted).
        assert (
            value is None or isinstance(value, str | int | float) and not isinstance(value, bool)
        ), f"{key}: {value!r} must be a string"
        env[str(key)] = "" if value is None else str(value)
    return env


def _interpolate(value: str) -> str:
    """Replace ${VAR}, ${VAR:-default}, ${VAR:?error}, $VAR and $$ as compose would."""

    def replace(match: re.Match[str]) -> str:
        if match["dollar"]:
            return "$"
        name = match["name"] or match["bare"]
        if name in SAMPLES:
            return SAMPLES[name]
        if match["op"] in (":-", "-"):
            return match["arg"]
        raise AssertionError(f"${{{name}}} has no default and no sample value in this test")

    return _INTERPOLATION.sub(replace, value)


def _interpolations(value: str) -> list[re.Match[str]]:
    return [m for m in _INTERPOLATION.finditer(value) if not m["dollar"]]


def _setting_error(variable: str) -> str | None:
    """Why ``variable`` names no field of the settings (walking nested models through ``__``)."""
    if not variable.startswith("LEADFLOW_"):
        return f"{variable}: not LEADFLOW_…"
    if variable != variable.upper():
        return f"{variable}: not upper case"
    parts = variable.removeprefix("LEADFLOW_").lower().split("__")
    model: type[BaseModel] = LeadflowSettings
    for depth, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return f"{variable}: {model.__name__} has no field {part!r}"
        annotation = field.annotation
        if depth < len(parts) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                return f"{variable}: {model.__name__}.{part} has no nested fields"
            model = annotation
    return None


def _settings_for(service: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings as the container would load them: only the compose environment is set."""
    for name in list(os.environ):
        if name.upper().startswith("LEADFLOW_"):
            monkeypatch.delenv(name)
    for name, value in _environment(_service(service)).items():
        monkeypatch.setenv(name, _interpolate(value))
    return load_settings()


def _healthcheck_command(service: dict[str, Any]) -> str:
    test = service.get("healthcheck", {}).get("test")
    assert test, "no healthcheck test"
    if isinstance(test, str):
        return test
    assert test[0] in ("CMD", "CMD-SHELL"), f"healthcheck test starts with {test[0]!r}"
    return " ".join(test[1:])


def _published(port: Any) -> tuple[int, int]:
    """(host port, container port) of one `ports:` entry, short or long syntax."""
    if isinstance(port, dict):
        return int(port["published"]), int(port["target"])
    spec = str(port).split("/")[0]
    *_, host, container = spec.split(":")
    return int(host), int(container)


def _listener_ports(listeners: str) -> dict[str, str]:
    """``NAME://host:port,…`` → {NAME: port}."""
    ports: dict[str, str] = {}
    for item in listeners.split(","):
        match = re.fullmatch(r"([A-Z_]+)://[^:]*:(\d+)", item.strip())
        assert match, f"listener {item!r} is not NAME://host:port"
        ports[match[1]] = match[2]
    return ports


def _dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "Dockerfile ends inside a continuation line"
    return instructions


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, arguments in _dockerfile():
        if keyword == "FROM":
            stages.append([])
        assert stages, f"{keyword} before the first FROM"
        stages[-1].append((keyword, arguments))
    return stages


def _dockerignore() -> set[str]:
    lines = (line.strip() for line in DOCKERIGNORE.read_text().splitlines())
    return {line.rstrip("/") for line in lines if line and not line.startswith("#")}


# --- the helpers themselves: a wrong file must be caught -----------------------------------------


@pytest.mark.parametrize(
    "variable",
    [
        "LEADFLOW_KAFKA__BOOTSTRAP_SERVER",
        "LEADFLOW_KAFKA_BOOTSTRAP_SERVERS",
        "LEADFLOW_LOG_JSONN",
        "LEADFLOW_DB__URL__HOST",
        "LEADFLOW_HTTP__host",
        "KAFKA_NODE_ID",
    ],
)
def test_setting_walk_rejects_typos(variable: str) -> None:
    assert _setting_error(variable) is not None


def test_setting_walk_accepts_real_settings() -> None:
    for variable in ("LEADFLOW_DB__URL", "LEADFLOW_LOG_JSON", "LEADFLOW_AUTH__SECRET_KEYS"):
        assert _setting_error(variable) is None


def test_cli_check_rejects_unknown_commands() -> None:
    assert CliRunner().invoke(app, ["intak", "--help"]).exit_code != 0
    assert CliRunner().invoke(app, ["db", "upgrad", "--help"]).exit_code != 0


def test_interpolation_follows_compose_rules() -> None:
    assert (
        _interpolate("${LEADFLOW_AUTH__SECRET_KEYS:?set it}")
        == SAMPLES["LEADFLOW_AUTH__SECRET_KEYS"]
    )
    assert _interpolate("${UNSET_IN_TEST:-fallback} $$HOME") == "fallback $HOME"
    with pytest.raises(AssertionError):
        _interpolate("${UNSET_IN_TEST:?required}")


# --- docker-compose.yml --------------------------------------------------------------------------


def test_compose_has_every_container() -> None:
    assert {"kafka", "postgres", *LEADFLOW_CONTAINERS} <= set(_services())
    assert "x-leadflow" in _compose(), "shared service settings live in the x-leadflow anchor"


def test_leadflow_containers_are_built_from_the_dockerfile() -> None:
    built = {name: service["build"] for name, service in _services().items() if "build" in service}
    assert set(built) == set(LEADFLOW_CONTAINERS)
    for name, build in built.items():
        assert isinstance(build, dict), f"{name}: build must name the Dockerfile"
        assert build.get("context") == ".", name
        assert build.get("dockerfile") == "deploy/Dockerfile", name
        assert (ROOT / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE


@pytest.mark.parametrize("name", LEADFLOW_CONTAINERS)
def test_command_is_a_real_cli_command(name: str) -> None:
    command = _service(name).get("command")
    assert isinstance(command, list) and command, f"{name}: command must be a non-empty list"
    assert all(isinstance(part, str) for part in command), command
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, f"{name}: `leadflow {' '.join(command)}`: {result.output}"


def test_commands_run_each_service() -> None:
    assert _service("migrate")["command"] == ["db", "upgrade"]
    for name in SERVICE_PORTS:
        assert _service(name)["command"] == [name]


def test_every_leadflow_variable_is_a_setting() -> None:
    named: set[str] = set()
    for service in _services().values():
        named |= {key for key in _environment(service) if key.startswith("LEADFLOW_")}
    assert named, "no LEADFLOW_ variables in docker-compose.yml"
    errors = [error for key in sorted(named) if (error := _setting_error(key))]
    assert not errors, "\n".join(errors)
    # Anything else spelled LEADFLOW_… in the file is a ${…} interpolation from the host.
    interpolated = {m["name"] or m["bare"] for m in _interpolations(COMPOSE.read_text())}
    mentioned = set(re.findall(r"\bLEADFLOW_[A-Za-z0-9_]+", COMPOSE.read_text()))
    assert mentioned - named <= interpolated, mentioned - named - interpolated


@pytest.mark.parametrize("name", LEADFLOW_CONTAINERS)
def test_compose_environment_loads(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings_for(name, monkeypatch)
    url = make_url(settings.db.url)
    assert url.drivername == "postgresql+asyncpg"
    assert url.host == "postgres" and "postgres" in _services()
    assert settings.kafka.bootstrap_servers == "kafka:9092"
    assert settings.kafka.idempotence is True
    assert settings.kafka.replication_factor == 1
    assert settings.http.host == "0.0.0.0"
    assert settings.log_json is True
    keys = [key.get_secret_value() for key in settings.auth.secret_keys]
    assert keys == [SAMPLE_KEY]


def test_secret_key_has_no_default() -> None:
    for name in LEADFLOW_CONTAINERS:
        value = _environment(_service(name))["LEADFLOW_AUTH__SECRET_KEYS"]
        matches = _interpolations(value)
        assert [m["name"] for m in matches] == ["LEADFLOW_AUTH__SECRET_KEYS"], value
        assert matches[0]["op"] == ":?", "the secret must be required, never defaulted"
        assert isinstance(json.loads(_interpolate(value)), list)


def test_dependencies_use_conditions() -> None:
    services = _services()
    for name, service in services.items():
        depends_on = service.get("depends_on")
        if depends_on is None:
            continue
        assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions"
        for target, spec in depends_on.items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = (spec or {}).get("condition")
            assert condition in (HEALTHY, COMPLETED), f"{name} → {target}: {condition}"
            if condition == HEALTHY:
                assert "healthcheck" in services[target], f"{target} has no healthcheck"
            else:
                restart = services[target].get("restart", "no")
                assert restart not in ("always", "unless-stopped"), f"{target} never completes"


def test_service_start_order() -> None:
    assert _service("migrate")["depends_on"] == {"postgres": {"condition": HEALTHY}}
    expected = {
        "kafka": {"condition": HEALTHY},
        "postgres": {"condition": HEALTHY},
        "migrate": {"condition": COMPLETED},
    }
    for name in SERVICE_PORTS:
        assert _service(name)["depends_on"] == expected, name


def test_long_running_services_have_healthchecks() -> None:
    for name, service in _services().items():
        if name == "migrate":
            assert service.get("restart", "no") in ("no", "on-failure")
            continue
        assert _healthcheck_command(service), name
        assert service.get("restart") == "unless-stopped", name


@pytest.mark.parametrize("name", list(SERVICE_PORTS))
def test_ports_match_settings(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    field = SERVICE_PORTS[name]
    default = HttpSettings.model_fields[field].default
    assert default == {
        "intake": 8000, "scoring": 8001, "sla-monitor": 8002, "webhooks": 8003, "analytics": 8004
    }[name]  # fmt: skip
    port = getattr(_settings_for(name, monkeypatch).http, field)
    assert port == default
    assert [_published(p) for p in _service(name).get("ports", [])] == [(port, port)]

    command = _healthcheck_command(_service(name))
    assert re.findall(r"http://127\.0\.0\.1:(\d+)/healthz", command) == [str(port)], command
    test = _service(name)["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"], "the slim image has no curl"
    compile(test[3], f"{name} healthcheck", "exec")


def test_kafka_is_single_node_kraft() -> None:
    kafka = _service("kafka")
    assert str(kafka["image"]).startswith("apache/kafka:")
    env = _environment(kafka)
    roles = {role.strip() for role in env["KAFKA_PROCESS_ROLES"].split(",")}
    assert roles == {"broker", "controller"}

    listeners = _listener_ports(env["KAFKA_LISTENERS"])
    protocols = dict(
        item.strip().split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(",")
    )
    assert set(listeners) <= set(protocols)
    assert env["KAFKA_CONTROLLER_LISTENER_NAMES"] in listeners
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] in listeners

    voters = [voter.strip() for voter in env["KAFKA_CONTROLLER_QUORUM_VOTERS"].split(",")]
    assert voters == [f"{env['KAFKA_NODE_ID']}@kafka:{listeners['CONTROLLER']}"]

    cluster_id = env["CLUSTER_ID"]
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16, "CLUSTER_ID: a base64 UUID"

    for setting in (
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
    ):
        assert int(env[setting]) <= len(voters), f"{setting} exceeds the number of brokers"

    advertised = {
        item.strip().split("://")[1] for item in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    }
    for name in LEADFLOW_CONTAINERS:
        servers = _interpolate(_environment(_service(name))["LEADFLOW_KAFKA__BOOTSTRAP_SERVERS"])
        assert set(servers.split(",")) <= advertised, f"{name}: {servers} is not advertised"
        replication = _environment(_service(name)).get("LEADFLOW_KAFKA__REPLICATION_FACTOR", "1")
        assert int(replication) <= len(voters)

    check = _healthcheck_command(kafka)
    assert re.search(r"/opt/kafka/bin/kafka-(broker-api-versions|topics)\.sh", check), check
    port = re.search(r"--bootstrap-server localhost:(\d+)", check)
    assert port and port[1] in listeners.values(), check


def test_postgres_matches_the_database_url() -> None:
    postgres = _service("postgres")
    assert postgres["image"] == "postgres:16"
    assert "pg_isready" in _healthcheck_command(postgres)
    volumes = [str(volume).split(":") for volume in postgres.get("volumes", [])]
    assert ["postgres-data", "/var/lib/postgresql/data"] in volumes
    assert "postgres-data" in (_compose().get("volumes") or {})

    env = _environment(postgres)
    for name in LEADFLOW_CONTAINERS:
        url = make_url(_interpolate(_environment(_service(name))["LEADFLOW_DB__URL"]))
        assert (url.username, url.password, url.database) == (
            env["POSTGRES_USER"],
            env["POSTGRES_PASSWORD"],
            env["POSTGRES_DB"],
        )
        assert url.host == "postgres" and url.port in (None, 5432)


# --- deploy/Dockerfile and .dockerignore ---------------------------------------------------------


def test_dockerfile_is_multi_stage_on_python_311() -> None:
    stages = _stages()
    assert len(stages) >= 2, "build and runtime stages"
    names: set[str] = set()
    for stage in stages:
        words = [word for word in stage[0][1].split() if not word.startswith("--")]
        image = words[0]
        assert image.startswith("python:3.11") or image in names, f"FROM {image}"
        if len(words) == 3 and words[1].upper() == "AS":
            names.add(words[2])
    final_image = [w for w in stages[-1][0][1].split() if not w.startswith("--")][0]
    assert final_image.startswith("python:3.11"), "the final stage starts from a clean base"


def test_dockerfile_runs_leadflow_as_a_non_root_user() -> None:
    final = _stages()[-1]
    users = [arguments for keyword, arguments in final if keyword == "USER"]
    assert users, "the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0", ""), users[-1]

    entrypoints = [arguments for keyword, arguments in final if keyword == "ENTRYPOINT"]
    assert entrypoints, "no ENTRYPOINT"
    entrypoint = json.loads(entrypoints[-1])  # exec form, so signals reach the process
    assert entrypoint == ["leadflow"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["leadflow"] == "services.cli:main"


def test_dockerfile_exposes_the_service_ports() -> None:
    exposed = {
        int(port.split("/")[0])
        for keyword, arguments in _dockerfile()
        if keyword == "EXPOSE"
        for port in arguments.split()
    }
    defaults = {HttpSettings.model_fields[field].default for field in SERVICE_PORTS.values()}
    assert defaults == {8000, 8001, 8002, 8003, 8004}
    assert defaults <= exposed


def test_dockerfile_installs_the_project_without_build_tools_in_the_final_stage() -> None:
    runs = [arguments for keyword, arguments in _dockerfile() if keyword == "RUN"]
    assert any(re.search(r"\bpip install (\S+ )*\.(\s|$)", run) for run in runs), runs
    assert not any("[dev]" in run for run in runs), "dev extras do not belong in the image"
    final_runs = " ".join(arguments for keyword, arguments in _stages()[-1] if keyword == "RUN")
    for tool in ("build-essential", "gcc", "pip install"):
        assert tool not in final_runs, f"{tool} in the final stage"


def test_dockerfile_copies_only_what_exists_and_is_not_ignored() -> None:
    ignored = _dockerignore()
    for keyword, arguments in _dockerfile():
        if keyword not in ("COPY", "ADD") or "--from=" in arguments:
            continue
        *sources, _destination = [word for word in arguments.split() if not word.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: missing from the build context"
            assert Path(source).parts[0] not in ignored, f"COPY {source}: in .dockerignore"


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    ignored = _dockerignore()
    for entry in (".git", ".venv", ".leadflow", ".pytest_cache", ".ruff_cache", ".mypy_cache"):
        assert entry in ignored, entry
    assert any("__pycache__" in entry for entry in ignored)


# --- deploy/README.md agrees with docker-compose.yml ---------------------------------------------

DEPLOY_README = ROOT / "deploy" / "README.md"


def _section(title: str) -> str:
    text = DEPLOY_README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_the_containers_table_names_every_compose_service() -> None:
    rows = re.findall(r"^\| `([a-z-]+)`", _section("The containers"), flags=re.MULTILINE)
    assert sorted(rows) == sorted(_services()), "deploy/README.md's table of containers"


def test_the_readme_names_every_variable_compose_sets() -> None:
    text = DEPLOY_README.read_text()
    named = {
        key
        for service in _services().values()
        for key in _environment(service)
        if key.startswith("LEADFLOW_")
    }
    shown = set(re.findall(r"LEADFLOW_[A-Z0-9_]+", text))
    # "`LEADFLOW_SMTP__HOST`, `…__PORT`" names the group's others by their last part.
    shown |= {f"LEADFLOW_SMTP__{part}" for part in re.findall(r"`…__([A-Z_]+)`", text)}
    assert named - shown == set(), "set by docker-compose.yml, not in deploy/README.md"


def test_principals_are_passed_to_every_container_and_never_required(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in LEADFLOW_CONTAINERS:
        value = _environment(_service(name))["LEADFLOW_AUTH__PRINCIPALS"]
        [match] = _interpolations(value)
        assert (match["name"], match["op"], match["arg"]) == (
            "LEADFLOW_AUTH__PRINCIPALS",
            ":-",
            "[]",
        )
        assert _settings_for(name, monkeypatch).auth.principals == []
