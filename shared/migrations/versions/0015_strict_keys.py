"""API keys: ``strict`` refuses a JSON lead's unknown fields (422) instead of keeping them in
``custom``; off for every existing key and by default.

Revision ID: 0015_strict_keys
Revises: 0002_intake
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_strict_keys"
down_revision: str | None = "0002_intake"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "api_keys",
        sa.Column("strict", sa.Boolean(), nullable=False, server_default=sa.false()),
    )


def downgrade() -> None:
    op.drop_column("api_keys", "strict")
