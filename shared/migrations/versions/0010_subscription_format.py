"""webhook subscriptions: the body they receive, ``cloudevents`` (as before, the default) or
``slack`` (a chat message rendered from the event)

After 0004, which builds the table (0009 alone does not lead to it: ``upgrade heads`` on a new
database could run this first), and after 0009, the last revision before it. The column comes
with a constant server default, so existing rows read ``cloudevents``. Both directions are
plain ``ALTER TABLE``, on SQLite too (ADD COLUMN with a constant default, DROP COLUMN since
3.35): a batch recreate would drop the table, and with ``foreign_keys=ON`` (shared/db.py) that
deletes every message and attempt of every subscription through their ``ON DELETE CASCADE``.

Revision ID: 0010_subscription_format
Revises: 0004_webhooks, 0009_cosigned_versions
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_subscription_format"
down_revision: tuple[str, ...] = ("0004_webhooks", "0009_cosigned_versions")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "webhook_subscriptions",
        sa.Column("format", sa.String(length=16), nullable=False, server_default="cloudevents"),
    )


def downgrade() -> None:
    op.drop_column("webhook_subscriptions", "format")
