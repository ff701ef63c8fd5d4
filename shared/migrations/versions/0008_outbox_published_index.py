"""outbox: the published-at index holds published rows only

The relay reads ``published_at IS NULL`` rows through ``ix_outbox_pending``. A full index on
``published_at`` also answers ``IS NULL``, over the entries of every row published since the
last vacuum: a generic plan cached while the table was small chose it, and each relay round then
walked them all. Pruning (``published_at < cutoff``) needs only the published rows.

Revision ID: 0008_outbox_published_index
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_outbox_published_index"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PUBLISHED = sa.text("published_at IS NOT NULL")


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_published_at")
        batch_op.create_index(
            "ix_outbox_published_at",
            ["published_at"],
            unique=False,
            postgresql_where=PUBLISHED,
            sqlite_where=PUBLISHED,
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_published_at")
        batch_op.create_index("ix_outbox_published_at", ["published_at"], unique=False)
