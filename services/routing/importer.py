"""CSV import of reps: every row checked first, then all applied in one transaction (or none).

Columns (header row; only ``email`` and ``name`` are required): email, name, teams, manager_email,
roles, territories, segments, languages, products, weight, max_open, max_per_day, time_zone,
working_hours, status, away_until. List columns separate values with ``;`` or ``|``. Teams that
do not exist yet are created (round robin). A manager may be a rep of the same file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.routing import store
from services.routing.models import Team
from services.routing.schemas import RepIn, TeamIn

LISTS = ("teams", "roles", "territories", "segments", "languages", "products")
COLUMNS = frozenset({*LISTS, *RepIn.model_fields, "manager_email"})


@dataclass
class ImportReport:
    rows: int = 0
    created_teams: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def parse_reps(text: str) -> tuple[list[RepIn], list[str]]:
    """The rows as reps, and every problem as ``row N, field: reason`` (row 1 is the header)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    try:
        rows = list(reader)
    except csv.Error as error:  # a stray quote or line break the csv module cannot read
        return [], [f"row {reader.line_num}: not CSV ({error})"]
    unknown = sorted(set(reader.fieldnames or ()) - COLUMNS)
    if not reader.fieldnames or unknown:
        return [], [f"row 1: unknown columns {unknown}" if unknown else "row 1: no header row"]
    reps, errors = [], []
    for number, row in enumerate(rows, start=2):
        values: dict[str, Any] = {k: v.strip() for k, v in row.items() if k and v and v.strip()}
        for name in LISTS:
            if name in values:
                values[name] = [p.strip() for p in values[name].replace("|", ";").split(";")]
        try:
            reps.append(RepIn.model_validate(values))
        except ValidationError as error:
            for item in error.errors():
                where = ".".join(str(p) for p in item["loc"]) or "row"
                errors.append(f"row {number}, {where}: {item['msg']}")
    emails = [r.email for r in reps]
    errors += [
        f"email {e} appears twice" for e in sorted({e for e in emails if emails.count(e) > 1})
    ]
    return reps, errors


async def apply_reps(
    session: AsyncSession,
    reps: list[RepIn],
    now: datetime,
    *,
    progress: Callable[[int], None] = lambda _: None,
) -> ImportReport:
    """Create or update every rep (the caller commits, or rolls back on an error)."""
    report = ImportReport(rows=len(reps))
    await store.lock_reps(session, [rep.email for rep in reps])
    known = set(await session.scalars(select(Team.name)))
    for name in sorted({t for rep in reps for t in rep.teams} - known):
        await store.put_team(session, TeamIn(name=name), now)
        report.created_teams.append(name)
    for rep in reps:  # managers may come later in the file: set them in a second pass
        await store.put_rep(session, rep.model_copy(update={"manager_email": None}), now)
        progress(1)
    for rep in reps:
        if rep.manager_email:
            await store.put_rep(session, rep, now)
    return report
