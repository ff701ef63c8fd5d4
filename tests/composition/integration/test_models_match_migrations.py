"""The tables the services declare (services/tables.py) are the tables the migrations build:
a model changed without its migration (or the reverse) fails here, on both databases."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from services.tables import metadata
from tests.support.common import Database


async def test_the_migrations_build_what_the_models_declare(db: Database) -> None:
    def differences(connection: Any) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with db.engine.connect() as connection:
        found = await connection.run_sync(differences)
    assert found == []
