"""SLA clocks: one row per clock of a lead (services/sla_monitor/models.py), open or closed, with
its planned ladder and the next tier's due time; responses no clock counted yet (sla_touches)

Revision ID: 0011_sla_clocks
Revises: 0010_subscription_format
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0011_sla_clocks"
down_revision: str | None = "0010_subscription_format"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
DUE = sa.text("next_due_at IS NOT NULL")
OPEN = sa.text("state = 'open'")


def upgrade() -> None:
    op.create_table(
        "sla_clocks",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("policy", sa.String(100), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=True),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("owner_email", sa.String(320), nullable=True),
        sa.Column("team", sa.String(100), nullable=True),
        sa.Column("source", sa.String(64), nullable=True),
        sa.Column("calendar", sa.String(64), nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("target_s", sa.Float(), nullable=False),
        sa.Column("deadline", TS, nullable=False),
        sa.Column("tiers", JSON, nullable=False),
        sa.Column("responses", JSON, nullable=False),
        sa.Column("next_tier", sa.Integer(), nullable=False),
        sa.Column("next_due_at", TS, nullable=True),
        sa.Column("system_time_s", sa.Float(), nullable=True),
        sa.Column("breached_at", TS, nullable=True),
        sa.Column("acknowledged_at", TS, nullable=True),
        sa.Column("acknowledged_by", sa.String(100), nullable=True),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("closed_reason", sa.String(64), nullable=True),
        sa.Column("response", sa.String(64), nullable=True),
        sa.Column("working_time_s", sa.Float(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sla_clocks_lead_id", "sla_clocks", ["lead_id"])
    op.create_index("ix_sla_clocks_owner_id", "sla_clocks", ["owner_id"])
    op.create_index("ix_sla_clocks_closed", "sla_clocks", ["closed_at"])
    op.create_index("ix_sla_clocks_updated", "sla_clocks", ["updated_at", "id"])
    op.create_index(
        "ix_sla_clocks_due", "sla_clocks", ["next_due_at"], postgresql_where=DUE, sqlite_where=DUE
    )
    op.create_index(
        "uq_sla_clocks_open",
        "sla_clocks",
        ["lead_id", "kind"],
        unique=True,
        postgresql_where=OPEN,
        sqlite_where=OPEN,
    )

    op.create_table(
        "sla_touches",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("response", sa.String(64), nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sla_touches_lead_id", "sla_touches", ["lead_id"])
    op.create_index("ix_sla_touches_created_at", "sla_touches", ["created_at"])


def downgrade() -> None:
    op.drop_table("sla_touches")
    op.drop_table("sla_clocks")
