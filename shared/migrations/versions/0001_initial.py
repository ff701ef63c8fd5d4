"""leads, inquiries, history, outbox, processed events

Revision ID: 0001
Revises:
Create Date: 2026-11-23 20:05:39.101443
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

OUTBOX_SHARDS = 16  # shared.models.OUTBOX_SHARDS when this revision was written

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "leads",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("first_name", sa.String(length=200), nullable=True),
        sa.Column("last_name", sa.String(length=200), nullable=True),
        sa.Column("company", sa.String(length=300), nullable=True),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("stage", sa.String(length=32), nullable=False),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("ruleset", sa.String(length=64), nullable=True),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leads")),
        sa.UniqueConstraint("email", name=op.f("uq_leads_email")),
    )
    op.create_table(
        "outbox",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("aggregate_type", sa.String(length=64), nullable=False),
        sa.Column("aggregate_id", sa.String(length=100), nullable=False),
        sa.Column("shard", sa.SmallInteger(), nullable=False),
        sa.Column("topic", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_outbox")),
        sa.UniqueConstraint("id", name=op.f("uq_outbox_id")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_outbox_pending",
            ["shard", "seq"],
            unique=False,
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        )
        batch_op.create_index("ix_outbox_published_at", ["published_at"], unique=False)

    shards = op.create_table(
        "outbox_shards",
        sa.Column("shard", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("shard", name=op.f("pk_outbox_shards")),
    )
    op.bulk_insert(shards, [{"shard": shard} for shard in range(OUTBOX_SHARDS)])
    op.create_table(
        "processed_events",
        sa.Column("consumer", sa.String(length=100), nullable=False),
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id", name=op.f("pk_processed_events")),
    )
    op.create_table(
        "inquiries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "submission",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name=op.f("fk_inquiries_lead_id_leads")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inquiries")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_inquiries_idempotency_key")),
    )
    with op.batch_alter_table("inquiries", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inquiries_lead_id"), ["lead_id"], unique=False)

    op.create_table(
        "lead_history",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("lead_id", sa.Uuid(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=True),
        sa.Column(
            "detail",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_lead_history_lead_id_leads")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lead_history")),
    )
    with op.batch_alter_table("lead_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lead_history_lead_id"), ["lead_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("lead_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lead_history_lead_id"))

    op.drop_table("lead_history")
    with op.batch_alter_table("inquiries", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inquiries_lead_id"))

    op.drop_table("inquiries")
    op.drop_table("processed_events")
    op.drop_table("outbox_shards")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_published_at")
        batch_op.drop_index(
            "ix_outbox_pending",
            postgresql_where=sa.text("published_at IS NULL"),
            sqlite_where=sa.text("published_at IS NULL"),
        )

    op.drop_table("outbox")
    op.drop_table("leads")
