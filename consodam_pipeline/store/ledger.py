"""Audit ledger rows as polars frames: content-derived event ids, and bulk appends that skip known ids.

A backfill writes millions of events, so ids are computed column-wise and rows go in through the
driver (SQLite executemany of INSERT OR IGNORE; PostgreSQL COPY into a staging table, then INSERT …
ON CONFLICT DO NOTHING) rather than one bound statement per row.
"""

from __future__ import annotations

import hashlib
import io
from contextlib import closing
from datetime import datetime

import polars as pl
import sqlalchemy as sa

from consodam_pipeline.store.engine import PG_SCHEMA

EVENT_COLUMNS: dict[str, pl.DataType] = {
    "event_type": pl.String(), "occurred_at": pl.Datetime("us"), "isbn13": pl.String(), "work_id": pl.String(),
    "dam_asset_id": pl.String(), "dam_version": pl.Int64(), "role": pl.String(), "actor": pl.String(),
    "before_json": pl.String(), "after_json": pl.String(), "run_id": pl.String(),
}  # fmt: skip
EVENT_ROWS: dict[str, pl.DataType] = {"event_id": pl.String(), **EVENT_COLUMNS}  # with_event_ids gives these
LEDGER_COLUMNS = [*EVENT_ROWS, "recorded_at"]
_SEP = "\x1f"
_ID_TIME = "%Y-%m-%dT%H:%M:%S%.6f"
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S%.6f"  # SQLAlchemy's storage format for DateTime on SQLite


def _identity_text() -> pl.Expr:
    """What an event id is derived from: what happened, not when or by which run we saw it."""
    described = pl.concat_str(
        [
            pl.col("event_type"),
            pl.col("occurred_at").dt.strftime(_ID_TIME),
            *[
                pl.col(c).cast(pl.String).fill_null("")
                for c in ("isbn13", "work_id", "dam_asset_id", "dam_version", "role", "after_json")
            ],
        ],
        separator=_SEP,
    )
    named = pl.concat_str([pl.col("event_type"), pl.lit("identity"), pl.col("identity")], separator=_SEP)
    return pl.when(pl.col("identity").is_not_null()).then(named).otherwise(described)


def with_event_ids(events: pl.DataFrame) -> pl.DataFrame:
    """EVENT_COLUMNS (plus an optional `identity` that names a replayable write) → with `event_id`."""
    if "identity" not in events.columns:
        events = events.with_columns(pl.lit(None, pl.String).alias("identity"))
    texts = events.select(_identity_text()).to_series().to_list()
    ids = pl.Series("event_id", [hashlib.sha256(t.encode()).hexdigest()[:40] for t in texts], pl.String)
    return events.select(ids, *EVENT_COLUMNS)


def append_event_frame(conn: sa.Connection, events: pl.DataFrame, recorded_at: datetime) -> int:
    """Insert the events whose id the ledger lacks; returns how many were new."""
    rows = events.unique(subset="event_id", keep="first", maintain_order=True).with_columns(
        pl.lit(recorded_at, pl.Datetime("us")).alias("recorded_at")
    )
    if rows.height == 0:
        return 0
    if conn.dialect.name == "postgresql":
        return _copy_into_postgres(conn, rows.select(LEDGER_COLUMNS))
    return _insert_into_sqlite(conn, rows.select(LEDGER_COLUMNS))


def _insert_into_sqlite(conn: sa.Connection, rows: pl.DataFrame) -> int:
    as_text = rows.with_columns(pl.col(c).dt.strftime(_SQLITE_TIME) for c in ("occurred_at", "recorded_at"))
    placeholders = ", ".join("?" for _ in LEDGER_COLUMNS)
    sql = f"INSERT OR IGNORE INTO audit_ledger ({', '.join(LEDGER_COLUMNS)}) VALUES ({placeholders})"
    inserted = 0
    with closing(conn.connection.cursor()) as cursor:
        for block in as_text.iter_slices(100_000):
            cursor.executemany(sql, block.rows())
            inserted += cursor.rowcount
    return inserted


def _copy_into_postgres(conn: sa.Connection, rows: pl.DataFrame) -> int:
    columns = ", ".join(LEDGER_COLUMNS)
    inserted = 0
    with closing(conn.connection.cursor()) as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS ledger_stage (LIKE {PG_SCHEMA}.audit_ledger) ON COMMIT DROP"
        )
        for block in rows.iter_slices(200_000):
            buffer = io.BytesIO()
            block.write_csv(buffer, include_header=False, null_value=r"\N", datetime_format=_ID_TIME)
            buffer.seek(0)
            cursor.copy_expert(
                f"COPY ledger_stage ({columns}) FROM STDIN WITH (FORMAT csv, NULL '\\N')", buffer
            )
            cursor.execute(
                f"INSERT INTO {PG_SCHEMA}.audit_ledger ({columns}) SELECT {columns} FROM ledger_stage "
                "ON CONFLICT (event_id) DO NOTHING"
            )
            inserted += cursor.rowcount
            cursor.execute("TRUNCATE ledger_stage")
    return inserted
