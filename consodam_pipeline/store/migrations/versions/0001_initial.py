"""Initial lineage store: record_history, audit_ledger, sync_cursor, quarantine.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import context, op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = context.config.attributes.get("schema")
    op.create_table(
        "record_history",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
        ),
        sa.Column("entity", sa.String(40), nullable=False),
        sa.Column("record_key", sa.String(200), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("valid_from", sa.DateTime(), nullable=False),
        sa.Column("valid_to", sa.DateTime(), nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        schema=schema,
    )
    op.create_index(
        "ix_record_history_key", "record_history", ["entity", "record_key", "valid_from"], schema=schema
    )
    # At most one open version per record: the invariant every as-of query relies on.
    op.create_index(
        "ux_record_history_open",
        "record_history",
        ["entity", "record_key"],
        unique=True,
        schema=schema,
        sqlite_where=sa.text("valid_to IS NULL"),
        postgresql_where=sa.text("valid_to IS NULL"),
    )
    op.create_table(
        "audit_ledger",
        sa.Column("event_id", sa.String(64), primary_key=True),
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
        schema=schema,
    )
    op.create_index("ix_audit_isbn_time", "audit_ledger", ["isbn13", "occurred_at"], schema=schema)
    op.create_index("ix_audit_asset", "audit_ledger", ["dam_asset_id", "dam_version"], schema=schema)
    op.create_table(
        "sync_cursor",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        schema=schema,
    )
    op.create_table(
        "quarantine",
        sa.Column("source", sa.String(40), primary_key=True),
        sa.Column("record_key", sa.String(200), primary_key=True),
        sa.Column("reason", sa.String(400), primary_key=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        schema=schema,
    )


def downgrade() -> None:
    schema = context.config.attributes.get("schema")
    for table in ("quarantine", "sync_cursor", "audit_ledger", "record_history"):
        op.drop_table(table, schema=schema)
