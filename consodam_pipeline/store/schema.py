"""Table definitions. Tables carry no schema name: PostgreSQL maps them into `consodam` at connect time."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()
STORE_REVISION = "0006"  # the newest migration: what this code reads and writes

# One row per version of a record as we observed it; the open version has valid_to NULL.
record_history = sa.Table(
    "record_history",
    metadata,
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
)
sa.Index(
    "ix_record_history_key", record_history.c.entity, record_history.c.record_key, record_history.c.valid_from
)
# At most one open version per record: the invariant every as-of query relies on.
sa.Index(
    "ux_record_history_open",
    record_history.c.entity,
    record_history.c.record_key,
    unique=True,
    sqlite_where=sa.text("valid_to IS NULL"),
    postgresql_where=sa.text("valid_to IS NULL"),
)

# Append-only: rows are inserted once (event_id is a content-derived id) and never updated. The id is
# unique by an index, not a primary key: SQLite cannot drop a primary key's index, and a first backfill
# builds this one once, by sorting, instead of placing millions of ids at random pages of it.
audit_ledger = sa.Table(
    "audit_ledger",
    metadata,
    sa.Column("event_id", sa.String(64), nullable=False),
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
sa.Index("ux_audit_event", audit_ledger.c.event_id, unique=True)
sa.Index("ix_audit_isbn_time", audit_ledger.c.isbn13, audit_ledger.c.occurred_at)
sa.Index("ix_audit_asset", audit_ledger.c.dam_asset_id, audit_ledger.c.dam_version)

sync_cursor = sa.Table(
    "sync_cursor",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text(), nullable=False),
    sa.Column("updated_at", sa.DateTime(), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
)

quarantine = sa.Table(
    "quarantine",
    metadata,
    sa.Column("source", sa.String(40), primary_key=True),
    sa.Column("record_key", sa.String(200), primary_key=True),
    sa.Column("reason", sa.String(400), primary_key=True),
    sa.Column("payload", sa.Text(), nullable=False),
    sa.Column("first_seen_at", sa.DateTime(), nullable=False),
    sa.Column("last_seen_at", sa.DateTime(), nullable=False),
    sa.Column("resolved_at", sa.DateTime(), nullable=True),
    sa.Column("run_id", sa.String(64), nullable=True),
)

# Items a write asset could not write: kept until the item is written (or no longer wanted), counting the
# runs in a row it failed, so a check can tell a passing hiccup from an item that never gets through.
write_failures = sa.Table(
    "write_failures",
    metadata,
    sa.Column("entity", sa.String(40), primary_key=True),
    sa.Column("record_key", sa.String(200), primary_key=True),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("first_failed_at", sa.DateTime(), nullable=False),
    sa.Column("last_failed_at", sa.DateTime(), nullable=False),
    sa.Column("consecutive_runs", sa.Integer(), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
    sa.Column("period", sa.String(20), nullable=True),  # the publication period the item belongs to
)

# The last modification stamp each system showed right after consodam wrote an object, and the record
# fields that write set: a change whose stamp is this one, or whose only differences are those fields with
# those values, is consodam's own write coming back, not work (sensors and ingest skip it).
write_journal = sa.Table(
    "write_journal",
    metadata,
    sa.Column("system", sa.String(20), primary_key=True),
    sa.Column("object_key", sa.String(200), primary_key=True),
    sa.Column("stamp", sa.String(64), nullable=False),
    sa.Column("fields", sa.Text(), nullable=True),
    sa.Column("written_at", sa.DateTime(), nullable=False),
    sa.Column("run_id", sa.String(64), nullable=True),
)

# The DAM's usage log, ingested: each download or delivery of an asset version, by whom, through which
# channel, for which edition (or work) — what answers "when was it used".
asset_usage = sa.Table(
    "asset_usage",
    metadata,
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
)
sa.Index("ix_usage_isbn_time", asset_usage.c.isbn13, asset_usage.c.used_at)
sa.Index("ix_usage_work_time", asset_usage.c.work_id, asset_usage.c.used_at)
sa.Index("ix_audit_work_time", audit_ledger.c.work_id, audit_ledger.c.occurred_at)

# Which edition (ISBN, '' for a work's own) and work ('' when unknown) each recorded object is about: the
# audit reads every facet of an edition as of a moment through this one index. A record whose ISBN changed
# has a row for each, so either finds it.
record_subject = sa.Table(
    "record_subject",
    metadata,
    sa.Column("entity", sa.String(40), primary_key=True),
    sa.Column("record_key", sa.String(200), primary_key=True),
    sa.Column("isbn13", sa.String(13), primary_key=True),
    sa.Column("work_id", sa.String(64), primary_key=True),
)
# Covering: the audit finds an edition's records (by ISBN) and its work's shared ones (by work, ISBN '')
# from the index alone.
sa.Index(
    "ix_subject_isbn",
    record_subject.c.isbn13,
    record_subject.c.entity,
    record_subject.c.record_key,
    record_subject.c.work_id,
)
sa.Index(
    "ix_subject_work",
    record_subject.c.work_id,
    record_subject.c.isbn13,
    record_subject.c.entity,
    record_subject.c.record_key,
)
sa.Index("ix_audit_time", audit_ledger.c.occurred_at)
