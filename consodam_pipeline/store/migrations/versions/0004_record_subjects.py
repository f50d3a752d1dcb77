"""Which edition (ISBN) or work each recorded object is about, so the audit finds every facet of an edition
as of any moment with one indexed lookup; and the ledger by time alone (the compliance report's window).

Subjects already in the store are filled in from the records' own payloads (editions and DAM versions) and,
for what consodam wrote on a DAM version, from that version's subject.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import context, op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = context.config.attributes.get("schema")
    op.create_table(
        "record_subject",
        sa.Column("entity", sa.String(40), primary_key=True),
        sa.Column("record_key", sa.String(200), primary_key=True),
        sa.Column("isbn13", sa.String(13), primary_key=True),
        sa.Column("work_id", sa.String(64), primary_key=True),
        schema=schema,
    )
    op.create_index(
        "ix_subject_isbn", "record_subject", ["isbn13", "entity", "record_key", "work_id"], schema=schema
    )
    op.create_index(
        "ix_subject_work", "record_subject", ["work_id", "isbn13", "entity", "record_key"], schema=schema
    )
    op.create_index("ix_audit_time", "audit_ledger", ["occurred_at"], schema=schema)
    backfill(schema)


def backfill(schema: str | None) -> None:
    prefix = f'"{schema}".' if schema else ""
    if op.get_bind().dialect.name == "postgresql":
        isbn, work = "payload::json->>'isbn13'", "payload::json->>'work_id'"
    else:
        isbn, work = "json_extract(payload, '$.isbn13')", "CAST(json_extract(payload, '$.work_id') AS TEXT)"
    op.execute(
        f"INSERT INTO {prefix}record_subject (entity, record_key, isbn13, work_id) "
        f"SELECT DISTINCT entity, record_key, COALESCE({isbn}, ''), COALESCE({work}, '') "
        f"FROM {prefix}record_history WHERE entity IN ('edition', 'dam_asset_version')"
    )
    op.execute(
        f"INSERT INTO {prefix}record_subject (entity, record_key, isbn13, work_id) "
        f"SELECT DISTINCT h.entity, h.record_key, s.isbn13, s.work_id FROM {prefix}record_history h "
        f"JOIN {prefix}record_subject s ON s.entity = 'dam_asset_version' AND s.record_key = h.record_key "
        f"WHERE h.entity IN ('dam_restriction', 'dam_title_tags')"
    )


def downgrade() -> None:
    schema = context.config.attributes.get("schema")
    op.drop_index("ix_audit_time", "audit_ledger", schema=schema)
    op.drop_table("record_subject", schema=schema)
