"""The publication period of each pending write, so a sensor can request a run for exactly the periods that
hold pending writes, whatever else changed.

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import context, op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = context.config.attributes.get("schema")
    op.add_column("write_failures", sa.Column("period", sa.String(20), nullable=True), schema=schema)


def downgrade() -> None:
    schema = context.config.attributes.get("schema")
    op.drop_column("write_failures", "period", schema=schema)
