"""Write failures (items pending, with how many runs in a row they failed) and the echo journal.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import context, op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = context.config.attributes.get("schema")
    op.create_table(
        "write_failures",
        sa.Column("entity", sa.String(40), primary_key=True),
        sa.Column("record_key", sa.String(200), primary_key=True),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("first_failed_at", sa.DateTime(), nullable=False),
        sa.Column("last_failed_at", sa.DateTime(), nullable=False),
        sa.Column("consecutive_runs", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        schema=schema,
    )
    op.create_table(
        "write_journal",
        sa.Column("system", sa.String(20), primary_key=True),
        sa.Column("object_key", sa.String(200), primary_key=True),
        sa.Column("stamp", sa.String(64), nullable=False),
        sa.Column("fields", sa.Text(), nullable=True),
        sa.Column("written_at", sa.DateTime(), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        schema=schema,
    )


def downgrade() -> None:
    schema = context.config.attributes.get("schema")
    op.drop_table("write_journal", schema=schema)
    op.drop_table("write_failures", schema=schema)
