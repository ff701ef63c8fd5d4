"""routing: owner directory, accounts, routing rulesets, fairness ledger, assignments

Revision ID: 0006_routing
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_routing"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def _stamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "routing_teams",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("strategy", sa.String(length=32), nullable=False),
        sa.Column("outside_hours", sa.String(length=8), nullable=False),
        sa.Column("manager_id", sa.Uuid(), nullable=True),
        *_stamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_teams")),
        sa.UniqueConstraint("name", name=op.f("uq_routing_teams_name")),
    )
    op.create_table(
        "routing_reps",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("manager_id", sa.Uuid(), nullable=True),
        sa.Column("roles", JSON, nullable=False),
        sa.Column("territories", JSON, nullable=False),
        sa.Column("segments", JSON, nullable=False),
        sa.Column("languages", JSON, nullable=False),
        sa.Column("products", JSON, nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("max_open", sa.Integer(), nullable=True),
        sa.Column("max_per_day", sa.Integer(), nullable=True),
        sa.Column("time_zone", sa.String(length=64), nullable=False),
        sa.Column("working_hours", JSON, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("away_until", TS, nullable=True),
        sa.Column("open_leads", sa.Integer(), nullable=False),
        sa.Column("assigned_day", sa.String(length=10), nullable=True),
        sa.Column("assigned_today", sa.Integer(), nullable=False),
        *_stamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_reps")),
        sa.UniqueConstraint("email", name=op.f("uq_routing_reps_email")),
    )
    op.create_table(
        "routing_memberships",
        sa.Column("team_id", sa.Uuid(), nullable=False),
        sa.Column("rep_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["routing_teams.id"],
            name=op.f("fk_routing_memberships_team_id_routing_teams"),
        ),
        sa.ForeignKeyConstraint(
            ["rep_id"], ["routing_reps.id"], name=op.f("fk_routing_memberships_rep_id_routing_reps")
        ),
        sa.PrimaryKeyConstraint("team_id", "rep_id", name=op.f("pk_routing_memberships")),
    )
    op.create_table(
        "routing_accounts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=True),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        *_stamps(),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["routing_reps.id"],
            name=op.f("fk_routing_accounts_owner_id_routing_reps"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_accounts")),
        sa.UniqueConstraint("domain", name=op.f("uq_routing_accounts_domain")),
    )
    op.create_table(
        "routing_rulesets",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("activated_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_routing_rulesets")),
        sa.UniqueConstraint("content_hash", name=op.f("uq_routing_rulesets_content_hash")),
    )
    op.create_table(
        "routing_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("directory_token", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_state")),
    )
    op.create_table(
        "routing_pools",
        sa.Column("team_id", sa.Uuid(), nullable=False),
        sa.Column("roster", JSON, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("routed", sa.Integer(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("team_id", name=op.f("pk_routing_pools")),
    )
    op.create_table(
        "routing_ledger",
        sa.Column("team_id", sa.Uuid(), nullable=False),
        sa.Column("rep_id", sa.Uuid(), nullable=False),
        sa.Column("credited", sa.Float(), nullable=False),
        sa.Column("assigned", sa.Integer(), nullable=False),
        sa.Column("window_count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("team_id", "rep_id", name=op.f("pk_routing_ledger")),
    )
    op.create_table(
        "routing_assignments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("decided_at", TS, nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("team_id", sa.Uuid(), nullable=True),
        sa.Column("previous_owner_id", sa.Uuid(), nullable=True),
        sa.Column("rule", sa.String(length=100), nullable=False),
        sa.Column("ruleset_version", sa.Integer(), nullable=True),
        sa.Column("strategy", sa.String(length=32), nullable=True),
        sa.Column("is_expansion", sa.Boolean(), nullable=False),
        sa.Column("account_id", sa.Uuid(), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("available_at", TS, nullable=True),
        sa.Column("candidates", JSON, nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_routing_assignments_lead_id_leads")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_assignments")),
    )
    with op.batch_alter_table("routing_assignments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_routing_assignments_lead_id"), ["lead_id"], unique=False
        )
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("owner_team_id", sa.Uuid(), nullable=True))
        batch_op.add_column(sa.Column("routing_status", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("routed_at", TS, nullable=True))
        batch_op.add_column(sa.Column("is_expansion", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("account_id", sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f("ix_leads_owner_id"), ["owner_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_leads_routing_status"), ["routing_status"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_leads_routing_status"))
        batch_op.drop_index(batch_op.f("ix_leads_owner_id"))
        for column in (
            "account_id",
            "is_expansion",
            "routed_at",
            "routing_status",
            "owner_team_id",
            "owner_id",
        ):
            batch_op.drop_column(column)
    with op.batch_alter_table("routing_assignments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_routing_assignments_lead_id"))
    for table in (
        "routing_assignments",
        "routing_ledger",
        "routing_pools",
        "routing_state",
        "routing_rulesets",
        "routing_accounts",
        "routing_memberships",
        "routing_reps",
        "routing_teams",
    ):
        op.drop_table(table)
