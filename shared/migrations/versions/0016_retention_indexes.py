"""Retention: indexes on the ages the pruning sweeps compare (``shared.pruning`` takes the oldest
rows first, batch by batch) — lead history by time, inquiries whose raw body is still kept by
arrival, delivery attempts by time, delivered webhook messages by delivery. Merges the heads.

Revision ID: 0016_retention_indexes
Revises: 0014_analytics, 0015_strict_keys
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_retention_indexes"
down_revision: tuple[str, ...] = ("0014_analytics", "0015_strict_keys")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RAW_KEPT = sa.text("raw IS NOT NULL")
DELIVERED = sa.text("status = 'delivered'")


def upgrade() -> None:
    with op.batch_alter_table("lead_history", schema=None) as batch_op:
        batch_op.create_index("ix_lead_history_occurred_at", ["occurred_at"], unique=False)
    with op.batch_alter_table("inquiries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_inquiries_raw_received_at",
            ["received_at"],
            unique=False,
            postgresql_where=RAW_KEPT,
            sqlite_where=RAW_KEPT,
        )
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_attempts_attempted_at", ["attempted_at"], unique=False)
    with op.batch_alter_table("webhook_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_messages_delivered_at",
            ["delivered_at"],
            unique=False,
            postgresql_where=DELIVERED,
            sqlite_where=DELIVERED,
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_messages_delivered_at")
    with op.batch_alter_table("webhook_attempts", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_attempts_attempted_at")
    with op.batch_alter_table("inquiries", schema=None) as batch_op:
        batch_op.drop_index("ix_inquiries_raw_received_at")
    with op.batch_alter_table("lead_history", schema=None) as batch_op:
        batch_op.drop_index("ix_lead_history_occurred_at")
