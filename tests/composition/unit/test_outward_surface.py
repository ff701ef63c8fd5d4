"""What users and integrations depend on stays put: the HTTP API (the OpenAPI document, its
paths in the order they are matched) and the ``leadflow`` command tree (commands, options,
defaults). Event types and settings are held by their own drift tests (docs/schemas,
docs/configuration.md).

A deliberate change regenerates the snapshots: ``UPDATE_GOLDEN=1 pytest
tests/composition/unit/test_outward_surface.py``: the diff shows what users see changed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click
import typer.main

from services.api import create_app
from services.cli import app as cli_app
from services.settings import load_settings
from shared.runtime import Runtime

GOLDEN = Path(__file__).parents[2] / "golden"


def _matches_snapshot(name: str, actual: Any) -> None:
    path = GOLDEN / name
    text = json.dumps(actual, indent=1, ensure_ascii=False) + "\n"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed: see the diff (or regenerate, if meant)"


async def test_the_http_api_is_unchanged(tmp_path: Path) -> None:
    runtime = Runtime.create(load_settings(db={"url": f"sqlite+aiosqlite:///{tmp_path}/a.db"}))
    try:
        document = create_app(runtime).openapi()
    finally:
        await runtime.close()
    operations = [
        f"{method.upper()} {path} {operation.get('operationId')}"
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]
    _matches_snapshot("openapi-operations.json", operations)
    _matches_snapshot("openapi.json", document)


def test_the_command_line_is_unchanged() -> None:
    _matches_snapshot("cli.json", _command(typer.main.get_command(cli_app)))


def _command(command: click.Command) -> dict[str, Any]:
    shown: dict[str, Any] = {"help": (command.help or "").strip().split("\n")[0]}
    shown["params"] = [_param(param) for param in command.params]
    if isinstance(subcommands := getattr(command, "commands", None), dict):
        shown["commands"] = {name: _command(sub) for name, sub in sorted(subcommands.items())}
    return shown


def _param(param: click.Parameter) -> dict[str, Any]:
    default = param.default if isinstance(param.default, str | int | float | bool) else None
    return {
        "name": param.name,
        "opts": [*param.opts, *param.secondary_opts],
        "kind": type(param).__name__,
        "required": param.required,
        "default": default,
        "multiple": param.multiple,
        "flag": getattr(param, "is_flag", False),
    }
