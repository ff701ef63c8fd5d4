"""webhook subscriptions of a CRM kind (``hubspot``, ``salesforce``) beside the plain ``webhook``:
their configuration and credentials, the consent flags a subscription asks for; and the CRM's
record id of each lead it received (``crm_links``), which is how the CRM's webhooks back find
the lead

Columns are added with plain ``ALTER TABLE`` (see 0010 for why not a batch recreate on SQLite).

Revision ID: 0013_crm_subscriptions
Revises: 0012_lead_handoffs
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013_crm_subscriptions"
down_revision: str | None = "0012_lead_handoffs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.add_column(
        "webhook_subscriptions",
        sa.Column("kind", sa.String(length=16), nullable=False, server_default="webhook"),
    )
    op.add_column("webhook_subscriptions", sa.Column("consent_flags", JSON, nullable=True))
    op.add_column("webhook_subscriptions", sa.Column("crm", JSON, nullable=True))
    op.add_column("webhook_subscriptions", sa.Column("credentials", JSON, nullable=True))
    op.create_table(
        "crm_links",
        sa.Column("subscription_id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.String(100), nullable=False),
        sa.Column("record_id", sa.String(200), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["webhook_subscriptions.id"],
            name="fk_crm_links_subscription_id_webhook_subscriptions",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("subscription_id", "lead_id", name="pk_crm_links"),
    )
    op.create_index(
        "ix_crm_links_record", "crm_links", ["subscription_id", "record_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_crm_links_record", table_name="crm_links")
    op.drop_table("crm_links")
    for column in ("credentials", "crm", "consent_flags", "kind"):
        op.drop_column("webhook_subscriptions", column)
