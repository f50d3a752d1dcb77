"""The ledger's event id unique by an index instead of a primary key, so a first backfill can build it once
at the end (SQLite cannot drop a primary key's index). SQLite rebuilds the table, rows in their order.

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import context, op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

COLUMNS = [
    "event_id",
    "event_type",
    "isbn13",
    "work_id",
    "dam_asset_id",
    "dam_version",
    "role",
    "actor",
    "occurred_at",
    "recorded_at",
    "run_id",
    "before_json",
    "after_json",
]
INDEXES = {
    "ix_audit_isbn_time": ["isbn13", "occurred_at"],
    "ix_audit_asset": ["dam_asset_id", "dam_version"],
    "ix_audit_work_time": ["work_id", "occurred_at"],
    "ix_audit_time": ["occurred_at"],
}


def upgrade() -> None:
    schema = context.config.attributes.get("schema")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(primary_key=False)
    else:
        op.drop_constraint("audit_ledger_pkey", "audit_ledger", type_="primary", schema=schema)
    op.create_index("ux_audit_event", "audit_ledger", ["event_id"], unique=True, schema=schema)


def downgrade() -> None:
    schema = context.config.attributes.get("schema")
    op.drop_index("ux_audit_event", "audit_ledger", schema=schema)
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(primary_key=True)
    else:
        op.create_primary_key("audit_ledger_pkey", "audit_ledger", ["event_id"], schema=schema)


def _rebuild(primary_key: bool) -> None:
    op.create_table(
        "audit_ledger_rebuilt",
        sa.Column("event_id", sa.String(64), nullable=False, primary_key=primary_key),
        sa.Column("event_type", sa.String(40), nullable=False),
        sa.Column("isbn13", sa.String(13), nullable=True),
        sa.Column("work_id", sa.String(64), nullable=True),
        sa.Column("dam_asset_id", sa.String(64), nullable=True),
        sa.Column("dam_version", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(40), nullable=True),
        sa.Column("actor", sa.String(200), nullable=True),
        sa.Column("occurred_at", sa.DateTime(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("before_json", sa.Text(), nullable=True),
        sa.Column("after_json", sa.Text(), nullable=True),
    )
    columns = ", ".join(COLUMNS)
    op.execute(
        f"INSERT INTO audit_ledger_rebuilt ({columns}) SELECT {columns} FROM audit_ledger ORDER BY rowid"
    )
    for name in INDEXES:
        op.drop_index(name, "audit_ledger")
    op.drop_table("audit_ledger")
    op.rename_table("audit_ledger_rebuilt", "audit_ledger")
    for name, indexed in INDEXES.items():
        op.create_index(name, "audit_ledger", indexed)
