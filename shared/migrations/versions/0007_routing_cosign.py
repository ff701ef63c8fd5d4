"""routing: routing rules co-signed like qualification rulesets (approvals, who activated, when
retired; at most one active version)

Revision ID: 0007_routing_cosign
Revises: 0006_routing
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_routing_cosign"
down_revision: str | None = "0006_routing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = sa.text("active")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("routing_rulesets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("activated_by", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("retired_at", TS, nullable=True))
    op.execute(
        "UPDATE routing_rulesets SET retired_at = activated_at "
        "WHERE NOT active AND activated_at IS NOT NULL"
    )
    op.create_index(
        "uq_routing_rulesets_active",
        "routing_rulesets",
        ["active"],
        unique=True,
        postgresql_where=ACTIVE,
        sqlite_where=ACTIVE,
    )
    op.create_table(
        "routing_ruleset_approvals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("ruleset_version", sa.Integer(), nullable=False),
        sa.Column("side", sa.String(length=16), nullable=False),
        sa.Column("approver", sa.String(length=200), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("approved_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["ruleset_version"],
            ["routing_rulesets.version"],
            name=op.f("fk_routing_ruleset_approvals_ruleset_version_routing_rulesets"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routing_ruleset_approvals")),
        sa.UniqueConstraint("ruleset_version", "side", name="uq_routing_ruleset_approvals_side"),
    )


def downgrade() -> None:
    op.drop_table("routing_ruleset_approvals")
    op.drop_index("uq_routing_rulesets_active", table_name="routing_rulesets")
    with op.batch_alter_table("routing_rulesets", schema=None) as batch_op:
        batch_op.drop_column("retired_at")
        batch_op.drop_column("activated_by")
        batch_op.drop_column("note")
