"""Routing: a ``routing_pools`` row for every team, the row a router now locks while it routes in
that pool (services/routing/txn.py: locks per pool, then per rep, in place of the one lock on
``routing_state``). A pool got its row the first time a lead was routed in it; teams made since
get theirs with the team. This makes the missing ones, as a pool that has seen no lead (empty
roster, position 0, nothing routed: how routing read a pool without a row). Rows that exist are
left as they are. Downgrade: nothing to undo (such a row reads as no row did).

Revision ID: 0017_routing_pool_rows
Revises: 0016_retention_indexes
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0017_routing_pool_rows"
down_revision: str | None = "0016_retention_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    teams = sa.table("routing_teams", sa.column("id", sa.Uuid()))
    pools = sa.table(
        "routing_pools",
        sa.column("team_id", sa.Uuid()),
        sa.column("roster", JSON),
        sa.column("position", sa.Integer()),
        sa.column("routed", sa.Integer()),
        sa.column("updated_at", sa.DateTime(timezone=True)),
    )
    connection = op.get_bind()
    without = sa.select(teams.c.id).where(~sa.exists().where(pools.c.team_id == teams.c.id))
    now = datetime.now(UTC)
    rows = [
        {"team_id": team_id, "roster": [], "position": 0, "routed": 0, "updated_at": now}
        for team_id in connection.scalars(without.order_by(teams.c.id))
    ]
    if rows:
        connection.execute(pools.insert(), rows)


def downgrade() -> None:
    pass
