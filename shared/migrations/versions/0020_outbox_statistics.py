"""outbox: no planner statistics on ``published_at`` (PostgreSQL)

The outbox is a queue: the share of its rows still waiting swings from almost none to almost
all within minutes (a broker outage, a burst), and ``published_at``'s statistics say what it was
at the last ANALYZE. Gathered during a backlog, they told the planner most rows wait, and the
relay's read walked the primary key from the oldest row retained through every published one,
each round (``shared.outbox.PENDING_IN_PG``). Without them the planner takes its default guess
(few rows wait) and reads them through ``ix_outbox_pending``, the index made for it.

``SET STATISTICS 0`` stops ANALYZE gathering them but keeps what it gathered before; changing
the column's type to itself drops those (no rewrite: the type is the same).

Revision ID: 0020_outbox_statistics
Revises: 0019_dedupe_retention
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0020_outbox_statistics"
down_revision: str | None = "0019_dedupe_retention"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite plans from its indexes unless ANALYZE is run, which Leadflow never does
    op.execute("ALTER TABLE outbox ALTER COLUMN published_at SET STATISTICS 0")
    op.execute("ALTER TABLE outbox ALTER COLUMN published_at TYPE TIMESTAMP WITH TIME ZONE")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE outbox ALTER COLUMN published_at SET STATISTICS -1")
