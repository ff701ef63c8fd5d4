"""Tracing (issue 21): the W3C ``traceparent`` kept with work that an event leaves for later, so
that it joins the event's trace when it is done: a webhook message's delivery attempts, an SLA
clock's tiers fired by the sweep. NULL while tracing is off (the default), and for rows made
before.

Revision ID: 0018_trace_context
Revises: 0017_routing_pool_rows
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018_trace_context"
down_revision: str | None = "0017_routing_pool_rows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
TABLES = ("webhook_messages", "sla_clocks")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("traceparent", sa.String(64), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        op.drop_column(table, "traceparent")
