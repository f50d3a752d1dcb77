"""The DAM's usage log, ingested: each download or delivery of a version, by whom, through which channel."""

from __future__ import annotations

import polars as pl
import sqlalchemy as sa

from consodam_pipeline.domain.timestamps import to_naive_utc, utcnow
from consodam_pipeline.store.bulk import bulk_insert
from consodam_pipeline.store.schema import asset_usage


class UsageLog:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def append(self, conn: sa.Connection, rows: pl.DataFrame) -> int:
        """Usage rows (asset_usage columns); a row already there (same usage_id) is skipped."""
        recorded = pl.lit(to_naive_utc(utcnow()), pl.Datetime("us")).alias("recorded_at")
        return bulk_insert(conn, asset_usage, rows.with_columns(recorded), skip_existing="usage_id")
