"""The DAM's usage log, and the ledger by work (the audit of an edition reads its work's events too).

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import context, op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = context.config.attributes.get("schema")
    op.create_table(
        "asset_usage",
        sa.Column("usage_id", sa.String(64), primary_key=True),
        sa.Column("asset_id", sa.String(64), nullable=False),
        sa.Column("dam_version", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(40), nullable=True),
        sa.Column("isbn13", sa.String(13), nullable=True),
        sa.Column("work_id", sa.String(64), nullable=True),
        sa.Column("used_by", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(40), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        schema=schema,
    )
    op.create_index("ix_usage_isbn_time", "asset_usage", ["isbn13", "used_at"], schema=schema)
    op.create_index("ix_usage_work_time", "asset_usage", ["work_id", "used_at"], schema=schema)
    op.create_index("ix_audit_work_time", "audit_ledger", ["work_id", "occurred_at"], schema=schema)


def downgrade() -> None:
    schema = context.config.attributes.get("schema")
    op.drop_index("ix_audit_work_time", "audit_ledger", schema=schema)
    op.drop_table("asset_usage", schema=schema)
