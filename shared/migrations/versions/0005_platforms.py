"""ad-platform leads, pending Graph API fetches, activities, outcomes; leads.is_test and crm_id

Revision ID: 0005_platforms
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005_platforms"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        batch.add_column(
            sa.Column("is_test", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(sa.Column("crm_id", sa.String(length=200), nullable=True))
    # A unique index rather than a constraint: SQLite adds it without rebuilding the table.
    op.create_index(op.f("ix_leads_crm_id"), "leads", ["crm_id"], unique=True)
    op.create_table(
        "platform_leads",
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("platform_lead_id", sa.String(length=200), nullable=False),
        sa.Column("form_id", sa.String(length=100), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("is_test", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=True),
        sa.Column("inquiry_id", sa.Uuid(), nullable=True),
        sa.Column("new_lead", sa.Boolean(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("detail", JSON, nullable=False),
        sa.PrimaryKeyConstraint("platform", "platform_lead_id", name=op.f("pk_platform_leads")),
    )
    op.create_index(op.f("ix_platform_leads_lead_id"), "platform_leads", ["lead_id"])
    op.create_table(
        "platform_fetches",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("platform_lead_id", sa.String(length=200), nullable=False),
        sa.Column("form_id", sa.String(length=100), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claim", sa.Uuid(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platform_fetches")),
    )
    op.create_index(op.f("ix_platform_fetches_due_at"), "platform_fetches", ["due_at"])
    op.create_index(
        "uq_platform_fetches_lead",
        "platform_fetches",
        ["platform", "platform_lead_id"],
        unique=True,
    )
    op.create_table(
        "lead_activities",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("properties", JSON, nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_lead_activities_lead_id_leads")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_activities")),
    )
    op.create_index(op.f("ix_lead_activities_lead_id"), "lead_activities", ["lead_id"])
    op.create_table(
        "lead_outcomes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("crm", sa.String(length=64), nullable=True),
        sa.Column("crm_id", sa.String(length=200), nullable=True),
        sa.Column("properties", JSON, nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_lead_outcomes_lead_id_leads")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_outcomes")),
    )
    op.create_index(op.f("ix_lead_outcomes_lead_id"), "lead_outcomes", ["lead_id"])
    op.create_index("ix_lead_outcomes_lead_outcome", "lead_outcomes", ["lead_id", "outcome"])


def downgrade() -> None:
    op.drop_table("lead_outcomes")
    op.drop_table("lead_activities")
    op.drop_table("platform_fetches")
    op.drop_table("platform_leads")
    op.drop_index(op.f("ix_leads_crm_id"), table_name="leads")
    with op.batch_alter_table("leads") as batch:
        batch.drop_column("crm_id")
        batch.drop_column("is_test")
