"""``leadflow routing-rules …``: routing rules versions from the server's shell, straight on the
database: ``validate`` here (against the teams that exist), the co-signing commands from
shared/cosign.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from services.routing.versions import ROUTING
from shared.cli import on_db, show
from shared.config import Settings
from shared.cosign.cli import add_commands

routing_rules_app = typer.Typer(
    help="Routing rules versions: validate, propose, approve (both sides), activate.",
    no_args_is_help=True,
)
AsOption = Annotated[str, typer.Option("--as", help="Who is acting (a principal's name)")]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output")]
FileArgument = Annotated[
    Path, typer.Argument(exists=True, dir_okay=False, help="Routing rules YAML")
]


@routing_rules_app.command()
def validate(path: FileArgument, as_json: JsonOption = False) -> None:
    """Check a rules file: YAML, CEL conditions, and teams that exist."""
    text = path.read_text(encoding="utf-8")

    async def work(session: AsyncSession, settings: Settings) -> dict[str, Any]:
        validated = await ROUTING.validate(session, text)
        return {"valid": True, "content_hash": validated.content_hash}

    show(on_db(work, write=False), as_json)


add_commands(routing_rules_app, ROUTING, file_help="Routing rules YAML")
