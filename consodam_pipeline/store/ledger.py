"""Audit ledger rows as polars frames: content-derived event ids, and bulk appends that skip known ids.

A backfill writes millions of events, so ids are computed column-wise and rows go in through
store.bulk (skipping ids the ledger has) rather than one bound statement per row.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

import polars as pl
import sqlalchemy as sa

from consodam_pipeline.store.bulk import bulk_insert
from consodam_pipeline.store.schema import audit_ledger

EVENT_COLUMNS: dict[str, pl.DataType] = {
    "event_type": pl.String(), "occurred_at": pl.Datetime("us"), "isbn13": pl.String(), "work_id": pl.String(),
    "dam_asset_id": pl.String(), "dam_version": pl.Int64(), "role": pl.String(), "actor": pl.String(),
    "before_json": pl.String(), "after_json": pl.String(), "run_id": pl.String(),
}  # fmt: skip
EVENT_ROWS: dict[str, pl.DataType] = {"event_id": pl.String(), **EVENT_COLUMNS}  # with_event_ids gives these
LEDGER_COLUMNS = [*EVENT_ROWS, "recorded_at"]
LEDGER_UNINDEXED = "consodam_ledger_unindexed"  # set on a connection while the ledger's indexes are deferred
_SEP = "\x1f"
_ID_TIME = "%Y-%m-%dT%H:%M:%S%.6f"


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
    if conn.info.get(LEDGER_UNINDEXED):  # an edition's events side by side: the audit reads them by ISBN
        rows = rows.sort("isbn13", "occurred_at")
    return bulk_insert(conn, audit_ledger, rows.select(LEDGER_COLUMNS), skip_existing="event_id")


def ledger_holds(conn: sa.Connection, rows: int) -> bool:
    """Whether the ledger holds at least `rows` rows (reads no more than that many index entries)."""
    probe = sa.select(sa.literal(1)).select_from(audit_ledger).offset(max(rows - 1, 0)).limit(1)
    return conn.execute(probe).first() is not None
