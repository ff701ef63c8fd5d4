"""The handoff service's memory: the last ``lead.qualified`` of each lead (its stage, owner or
queue), so the same handoff is never emitted twice (services/handoff/models.py)

Revision ID: 0012_lead_handoffs
Revises: 0011_sla_clocks
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_lead_handoffs"
down_revision: str | None = "0011_sla_clocks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "lead_handoffs",
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("team_id", sa.Uuid(), nullable=True),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("handed_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("lead_id"),
    )


def downgrade() -> None:
    op.drop_table("lead_handoffs")
