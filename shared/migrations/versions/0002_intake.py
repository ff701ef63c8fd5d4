"""intake: normalised lead facts, phone-only dedupe key, spam quarantine, erasure; raw
submissions; API keys; idempotency records

Revision ID: 0002_intake
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_intake"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        batch.add_column(sa.Column("country", sa.String(length=2), nullable=True))
        batch.add_column(sa.Column("company_domain", sa.String(length=253), nullable=True))
        batch.add_column(sa.Column("phone_key", sa.String(length=32), nullable=True))
        batch.add_column(
            sa.Column("quarantined", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))
    # Indexes rather than constraints: SQLite adds them without rebuilding the table.
    op.create_index(op.f("ix_leads_phone_key"), "leads", ["phone_key"], unique=True)
    op.create_index(op.f("ix_leads_phone"), "leads", ["phone"])
    with op.batch_alter_table("inquiries") as batch:
        batch.add_column(sa.Column("raw", JSON, nullable=True))
        batch.add_column(sa.Column("quarantine_reason", sa.String(length=64), nullable=True))
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("allowed_origins", JSON, nullable=False),
        sa.Column("thank_you_url", sa.String(length=2000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_table(
        "idempotency_records",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("body", JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_idempotency_records")),
    )
    op.create_index(
        op.f("ix_idempotency_records_created_at"), "idempotency_records", ["created_at"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_idempotency_records_created_at"), table_name="idempotency_records")
    op.drop_table("idempotency_records")
    op.drop_table("api_keys")
    with op.batch_alter_table("inquiries") as batch:
        batch.drop_column("quarantine_reason")
        batch.drop_column("raw")
    op.drop_index(op.f("ix_leads_phone"), table_name="leads")
    op.drop_index(op.f("ix_leads_phone_key"), table_name="leads")
    with op.batch_alter_table("leads") as batch:
        batch.drop_column("erased_at")
        batch.drop_column("quarantined")
        batch.drop_column("phone_key")
        batch.drop_column("company_domain")
        batch.drop_column("country")
