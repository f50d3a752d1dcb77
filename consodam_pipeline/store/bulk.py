"""Bulk appends through the database driver: SQLite executemany, PostgreSQL COPY.

Ingests and backfills write millions of rows; binding each row through SQLAlchemy's statement layer
costs more than the database work. Rows arrive as polars frames whose columns are table columns.
"""

from __future__ import annotations

import io
from contextlib import closing

import polars as pl
import sqlalchemy as sa

from consodam_pipeline.store.engine import PG_SCHEMA

SQLITE_TIME = "%Y-%m-%d %H:%M:%S%.6f"  # SQLAlchemy's storage format for DateTime on SQLite
_PG_TIME = "%Y-%m-%dT%H:%M:%S%.6f"
_BLOCK = 100_000


def bulk_insert(conn: sa.Connection, table: sa.Table, rows: pl.DataFrame, *, skip_existing: str = "") -> int:
    """Insert the rows (in the caller's transaction); with `skip_existing` (a unique column), rows whose
    value is already there are left out. Returns how many rows were inserted."""
    if rows.height == 0:
        return 0
    if conn.dialect.name == "postgresql":
        return _copy(conn, table, rows, skip_existing)
    return _executemany(conn, table, rows, skip_existing)


def _executemany(conn: sa.Connection, table: sa.Table, rows: pl.DataFrame, skip_existing: str) -> int:
    as_text = rows.with_columns(pl.col(pl.Datetime).dt.strftime(SQLITE_TIME))
    verb = "INSERT OR IGNORE" if skip_existing else "INSERT"
    columns = ", ".join(rows.columns)
    sql = f"{verb} INTO {table.name} ({columns}) VALUES ({', '.join('?' for _ in rows.columns)})"
    inserted = 0
    with closing(conn.connection.cursor()) as cursor:
        for block in as_text.iter_slices(_BLOCK):
            cursor.executemany(sql, block.rows())
            inserted += cursor.rowcount
    return inserted


def _copy(conn: sa.Connection, table: sa.Table, rows: pl.DataFrame, skip_existing: str) -> int:
    columns = ", ".join(rows.columns)
    target = f"{PG_SCHEMA}.{table.name}"
    stage = f"{table.name}_stage"
    inserted = 0
    with closing(conn.connection.cursor()) as cursor:
        if skip_existing:
            cursor.execute(f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {target}) ON COMMIT DROP")
        for block in rows.iter_slices(_BLOCK * 2):
            buffer = io.BytesIO()
            block.write_csv(buffer, include_header=False, null_value=r"\N", datetime_format=_PG_TIME)
            buffer.seek(0)
            into = stage if skip_existing else target
            cursor.copy_expert(f"COPY {into} ({columns}) FROM STDIN WITH (FORMAT csv, NULL '\\N')", buffer)
            if not skip_existing:
                inserted += block.height
                continue
            cursor.execute(
                f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {stage} "
                f"ON CONFLICT ({skip_existing}) DO NOTHING"
            )
            inserted += cursor.rowcount
            cursor.execute(f"TRUNCATE {stage}")
    return inserted
