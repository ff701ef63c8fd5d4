"""qualification: ruleset versions, approvals, activities, stage transitions, lead stage columns

Revision ID: 0003_rules
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003_rules"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ACTIVE = sa.text("status = 'active'")
STAGE_TIMES = ("mql", "sal", "sql", "opportunity", "won", "lost", "recycled", "disqualified")


def upgrade() -> None:
    op.create_table(
        "rulesets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("proposed_by", sa.String(length=100), nullable=False),
        sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("activated_by", sa.String(length=100), nullable=True),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rulesets")),
        sa.UniqueConstraint("version", name=op.f("uq_rulesets_version")),
        sa.UniqueConstraint("label", name=op.f("uq_rulesets_label")),
    )
    op.create_index(
        "uq_rulesets_active",
        "rulesets",
        ["status"],
        unique=True,
        postgresql_where=ACTIVE,
        sqlite_where=ACTIVE,
    )
    op.create_table(
        "ruleset_approvals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("ruleset_id", sa.Uuid(), nullable=False),
        sa.Column("side", sa.String(length=16), nullable=False),
        sa.Column("approver", sa.String(length=100), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["ruleset_id"],
            ["rulesets.id"],
            name=op.f("fk_ruleset_approvals_ruleset_id_rulesets"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ruleset_approvals")),
        sa.UniqueConstraint("ruleset_id", "side", name="uq_ruleset_approvals_side"),
    )
    op.create_index(op.f("ix_ruleset_approvals_ruleset_id"), "ruleset_approvals", ["ruleset_id"])
    op.create_table(
        "scoring_activities",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_scoring_activities_lead_id_leads")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scoring_activities")),
        sa.UniqueConstraint("event_id", name=op.f("uq_scoring_activities_event_id")),
    )
    op.create_index("ix_scoring_activities_lead", "scoring_activities", ["lead_id", "occurred_at"])
    op.create_table(
        "lead_transitions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_stage", sa.String(length=32), nullable=False),
        sa.Column("to_stage", sa.String(length=32), nullable=False),
        sa.Column("cause", sa.String(length=16), nullable=False),
        sa.Column("rules", JSON, nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("ruleset", sa.String(length=64), nullable=True),
        sa.Column("event_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_lead_transitions_lead_id_leads")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_transitions")),
    )
    op.create_index("ix_lead_transitions_lead", "lead_transitions", ["lead_id", "occurred_at"])
    with op.batch_alter_table("leads") as batch:
        batch.add_column(sa.Column("fit_grade", sa.String(length=8), nullable=True))
        batch.add_column(sa.Column("engagement_score", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("stage_reason", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("stage_changed_at", sa.DateTime(timezone=True), nullable=True))
        for stage in STAGE_TIMES:
            batch.add_column(sa.Column(f"{stage}_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        for stage in reversed(STAGE_TIMES):
            batch.drop_column(f"{stage}_at")
        for column in ("stage_changed_at", "stage_reason", "engagement_score", "fit_grade"):
            batch.drop_column(column)
    op.drop_index("ix_lead_transitions_lead", table_name="lead_transitions")
    op.drop_table("lead_transitions")
    op.drop_index("ix_scoring_activities_lead", table_name="scoring_activities")
    op.drop_table("scoring_activities")
    op.drop_index(op.f("ix_ruleset_approvals_ruleset_id"), table_name="ruleset_approvals")
    op.drop_table("ruleset_approvals")
    op.drop_index("uq_rulesets_active", table_name="rulesets")
    op.drop_table("rulesets")
