"""Retention of the consumers' records of applied events (``processed_events``, one per consumer
per event, about 25 a lead): an index on their time, which the sweep takes the oldest by
(``shared.consumer.dedupe_retention``).

Revision ID: 0019_dedupe_retention
Revises: 0018_trace_context
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019_dedupe_retention"
down_revision: str | None = "0018_trace_context"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.create_index("ix_processed_events_processed_at", ["processed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("processed_events", schema=None) as batch_op:
        batch_op.drop_index("ix_processed_events_processed_at")
