"""co-signed configuration: the qualification rulesets' and the routing rules' versions and
approvals in one pair of tables, by kind (shared/cosign), every version, approval and the
active version of each kind kept as they were

Revision ID: 0009_cosigned_versions
Revises: 0003_rules, 0007_routing_cosign
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.ids import new_id

revision: str = "0009_cosigned_versions"
down_revision: tuple[str, ...] = ("0003_rules", "0007_routing_cosign")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
ACTIVE = sa.text("status = 'active'")
COLUMNS = (
    "id, kind, version, label, name, content, content_hash, status, note, proposed_by,"
    " proposed_at, activated_by, activated_at, retired_at"
)


def upgrade() -> None:
    _create_tables()
    bind = op.get_bind()
    duplicates = bind.execute(
        sa.text(
            "SELECT content_hash, min(version), max(version) FROM rulesets"
            " GROUP BY content_hash HAVING count(*) > 1"
        )
    ).all()
    if duplicates:
        named = ", ".join(f"{low} and {high}" for _, low, high in duplicates)
        raise RuntimeError(f"ruleset versions {named} have the same content: keep one of each")
    bind.execute(
        sa.text(
            f"INSERT INTO cosigned_versions ({COLUMNS}) SELECT id, 'qualification', version,"
            " label, name, content, content_hash, status, note, proposed_by, proposed_at,"
            " activated_by, activated_at, retired_at FROM rulesets"
        )
    )
    bind.execute(
        sa.text(
            "INSERT INTO cosigned_approvals (id, version_id, side, approver, content_hash,"
            " approved_at) SELECT id, ruleset_id, side, approver, content_hash, approved_at"
            " FROM ruleset_approvals"
        )
    )
    copy = sa.text(
        f"INSERT INTO cosigned_versions ({COLUMNS}) SELECT :id, 'routing', version, NULL, NULL,"
        " text, content_hash, CASE WHEN active THEN 'active' WHEN retired_at IS NOT NULL"
        " THEN 'retired' ELSE 'proposed' END, note, created_by, created_at, activated_by,"
        " activated_at, retired_at FROM routing_rulesets WHERE version = :version"
    ).bindparams(sa.bindparam("id", type_=sa.Uuid()))
    for version in bind.scalars(sa.text("SELECT version FROM routing_rulesets")).all():
        bind.execute(copy, {"id": new_id(), "version": version})
    bind.execute(
        sa.text(
            "INSERT INTO cosigned_approvals (id, version_id, side, approver, content_hash,"
            " approved_at) SELECT a.id, v.id, a.side, a.approver, a.content_hash, a.approved_at"
            " FROM routing_ruleset_approvals a JOIN cosigned_versions v"
            " ON v.kind = 'routing' AND v.version = a.ruleset_version"
        )
    )
    op.create_index(
        "uq_cosigned_versions_active",
        "cosigned_versions",
        ["kind"],
        unique=True,
        postgresql_where=ACTIVE,
        sqlite_where=ACTIVE,
    )
    op.drop_table("ruleset_approvals")
    op.drop_index("uq_rulesets_active", table_name="rulesets")
    op.drop_table("rulesets")
    op.drop_table("routing_ruleset_approvals")
    op.drop_index("uq_routing_rulesets_active", table_name="routing_rulesets")
    op.drop_table("routing_rulesets")


def _create_tables() -> None:
    op.create_table(
        "cosigned_versions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=100), nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("proposed_by", sa.String(length=200), nullable=False),
        sa.Column("proposed_at", TS, nullable=False),
        sa.Column("activated_by", sa.String(length=200), nullable=True),
        sa.Column("activated_at", TS, nullable=True),
        sa.Column("retired_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cosigned_versions")),
        sa.UniqueConstraint("kind", "version", name="uq_cosigned_versions_version"),
        sa.UniqueConstraint("kind", "label", name="uq_cosigned_versions_label"),
        sa.UniqueConstraint("kind", "content_hash", name="uq_cosigned_versions_content"),
    )
    op.create_table(
        "cosigned_approvals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("version_id", sa.Uuid(), nullable=False),
        sa.Column("side", sa.String(length=16), nullable=False),
        sa.Column("approver", sa.String(length=200), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("approved_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["cosigned_versions.id"],
            name=op.f("fk_cosigned_approvals_version_id_cosigned_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cosigned_approvals")),
        sa.UniqueConstraint("version_id", "side", name="uq_cosigned_approvals_side"),
    )
    op.create_index(op.f("ix_cosigned_approvals_version_id"), "cosigned_approvals", ["version_id"])


def downgrade() -> None:
    """The two pairs of tables again, in their shapes of 0003 and 0007, with every row."""
    op.create_table(
        "rulesets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("proposed_by", sa.String(length=100), nullable=False),
        sa.Column("proposed_at", TS, nullable=False),
        sa.Column("activated_by", sa.String(length=100), nullable=True),
        sa.Column("activated_at", TS, nullable=True),
        sa.Column("retired_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rulesets")),
        sa.UniqueConstraint("version", name=op.f("uq_rulesets_version")),
        sa.UniqueConstraint("label", name=op.f("uq_rulesets_label")),
    )
    op.create_index(
        "uq_rulesets_active",
        "rulesets",
        ["status"],
        unique=True,
        postgresql_where=ACTIVE,
        sqlite_where=ACTIVE,
    )
    op.create_table(
        "ruleset_approvals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("ruleset_id", sa.Uuid(), nullable=False),
        sa.Column("side", sa.String(length=16), nullable=False),
        sa.Column("approver", sa.String(length=100), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("approved_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["ruleset_id"], ["rulesets.id"], name=op.f("fk_ruleset_approvals_ruleset_id_rulesets")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ruleset_approvals")),
        sa.UniqueConstraint("ruleset_id", "side", name="uq_ruleset_approvals_side"),
    )
    op.create_index(op.f("ix_ruleset_approvals_ruleset_id"), "ruleset_approvals", ["ruleset_id"])
    op.create_table(
        "routing_rulesets",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("activated_at", TS, nullable=True),
        sa.Column("note", sa.Text(), nullable=False, server_default=""),
        sa.Column("activated_by", sa.String(length=200), nullable=True),
        sa.Column("retired_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_routing_rulesets")),
        sa.UniqueConstraint("content_hash", name=op.f("uq_routing_rulesets_content_hash")),
    )
    op.create_index(
        "uq_routing_rulesets_active",
        "routing_rulesets",
        ["active"],
        unique=True,
        postgresql_where=sa.text("active"),
        sqlite_where=sa.text("active"),
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
    bind = op.get_bind()
    bind.execute(
        sa.text(
            "INSERT INTO rulesets (id, version, label, name, content, content_hash, status, note,"
            " proposed_by, proposed_at, activated_by, activated_at, retired_at) SELECT id,"
            " version, label, name, content, content_hash, status, note, proposed_by,"
            " proposed_at, activated_by, activated_at, retired_at FROM cosigned_versions"
            " WHERE kind = 'qualification'"
        )
    )
    bind.execute(
        sa.text(
            "INSERT INTO ruleset_approvals (id, ruleset_id, side, approver, content_hash,"
            " approved_at) SELECT a.id, a.version_id, a.side, a.approver, a.content_hash,"
            " a.approved_at FROM cosigned_approvals a JOIN cosigned_versions v"
            " ON v.id = a.version_id WHERE v.kind = 'qualification'"
        )
    )
    bind.execute(
        sa.text(
            "INSERT INTO routing_rulesets (version, content_hash, text, active, created_by,"
            " created_at, activated_at, note, activated_by, retired_at) SELECT version,"
            " content_hash, content, status = 'active', proposed_by, proposed_at, activated_at,"
            " note, activated_by, retired_at FROM cosigned_versions WHERE kind = 'routing'"
        )
    )
    bind.execute(
        sa.text(
            "INSERT INTO routing_ruleset_approvals (id, ruleset_version, side, approver,"
            " content_hash, approved_at) SELECT a.id, v.version, a.side, a.approver,"
            " a.content_hash, a.approved_at FROM cosigned_approvals a JOIN cosigned_versions v"
            " ON v.id = a.version_id WHERE v.kind = 'routing'"
        )
    )
    op.drop_table("cosigned_approvals")
    op.drop_table("cosigned_versions")
