"""The analytics service's tables: the facts it kept of each event it applied, and the funnel's
line of each lead folded from them (services/analytics/models.py)

Revision ID: 0014_analytics
Revises: 0013_crm_subscriptions
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014_analytics"
down_revision: str | None = "0013_crm_subscriptions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "analytics_facts",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("detail", JSON, nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index("ix_analytics_facts_lead_id", "analytics_facts", ["lead_id"])
    op.create_index("ix_analytics_facts_occurred_at", "analytics_facts", ["occurred_at"])
    op.create_table(
        "analytics_leads",
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("cohort_at", TS, nullable=False),
        sa.Column("cohort_day", sa.String(10), nullable=False),
        sa.Column("cohort_month", sa.String(7), nullable=False),
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("campaign", sa.String(200), nullable=True),
        sa.Column("medium", sa.String(200), nullable=True),
        sa.Column("ad_platform", sa.String(16), nullable=True),
        sa.Column("segment", sa.String(64), nullable=True),
        sa.Column("team", sa.String(200), nullable=True),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("owner_email", sa.String(320), nullable=True),
        sa.Column("is_expansion", sa.Boolean(), nullable=True),
        sa.Column("routed_at", TS, nullable=True),
        sa.Column("ruleset", sa.String(64), nullable=True),
        sa.Column("is_test", sa.Boolean(), nullable=False),
        sa.Column("mql_at", TS, nullable=True),
        sa.Column("sql_at", TS, nullable=True),
        sa.Column("opportunity_at", TS, nullable=True),
        sa.Column("booked_at", TS, nullable=True),
        sa.Column("lost_at", TS, nullable=True),
        sa.Column("dropped_at", TS, nullable=True),
        sa.Column("opportunity_amount", sa.Float(), nullable=True),
        sa.Column("opportunity_amount_at", TS, nullable=True),
        sa.Column("booking_amount", sa.Float(), nullable=True),
        sa.Column("booking_amount_at", TS, nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("sourced_by", sa.String(16), nullable=True),
        sa.PrimaryKeyConstraint("lead_id"),
    )
    op.create_index("ix_analytics_leads_cohort", "analytics_leads", ["is_test", "cohort_day"])


def downgrade() -> None:
    op.drop_table("analytics_leads")
    op.drop_table("analytics_facts")
