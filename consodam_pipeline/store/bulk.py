"""Bulk appends through the database driver: SQLite executemany, PostgreSQL COPY.

Ingests and backfills write millions of rows; binding each row through SQLAlchemy's statement layer
costs more than the database work. Rows arrive as polars frames whose columns are table columns. An
append of more rows than a table holds (a first ingest, a first backfill) may drop its indexes inside
its transaction and build them at the end (`holds`, `drop_in_transaction`).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import datetime
from typing import Any, TypeVar

import polars as pl
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from consodam_pipeline.store.engine import PG_SCHEMA

SQLITE_TIME = "%Y-%m-%d %H:%M:%S%.6f"  # SQLAlchemy's storage format for DateTime on SQLite
_SQLITE_TIME_PY = "%Y-%m-%d %H:%M:%S.%f"  # the same, for Python's strftime
_PG_TIME = "%Y-%m-%dT%H:%M:%S%.6f"
# Rows per executemany (SQLite): each is a Python tuple while its block is bound, ~1.3 KB for a ledger row.
_TUPLES = 20_000
_COPIED = 200_000  # rows per COPY (PostgreSQL): a CSV buffer
IN_LIST = 900  # stays under SQLite's bound-parameter limit for IN (...) lists

T = TypeVar("T")


def chunks(items: Sequence[Any], size: int = IN_LIST) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def computed_ahead(items: Iterable[T]) -> Iterator[T]:
    """The items, each next one computed in a thread while the caller appends this one: the next block is
    read or derived (polars, on the other core) while the one before goes into the store (the driver lets
    go of the GIL while the database writes)."""
    pending = iter(items)
    with ThreadPoolExecutor(max_workers=1) as worker:
        upcoming = worker.submit(next, pending, None)
        while (item := upcoming.result()) is not None:
            upcoming = worker.submit(next, pending, None)
            yield item


def holds(conn: sa.Connection, table: sa.Table, rows: int) -> bool:
    """Whether the table holds at least `rows` rows (reads no more than that many index entries)."""
    probe = sa.select(sa.literal(1)).select_from(table).offset(max(rows - 1, 0)).limit(1)
    return conn.execute(probe).first() is not None


def drop_in_transaction(conn: sa.Connection, indexes: Iterable[sa.Index]) -> None:
    """Drop the indexes (SQLite) inside the caller's transaction, so a failure before its commit brings
    them back. pysqlite opens a transaction only before a DML statement: a DROP INDEX first in one would
    be committed on its own, so the transaction is opened here when it is not yet."""
    if not conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
        conn.exec_driver_sql("BEGIN")
    for index in indexes:
        index.drop(conn)


def upsert(conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> None:
    """Insert rows; where the key exists, overwrite the non-key columns given."""
    if not rows:
        return
    stmt = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(table)
    update_cols = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
    conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=update_cols), list(rows))


Constant = str | int | datetime | None


def bulk_insert(
    conn: sa.Connection,
    table: sa.Table,
    rows: pl.DataFrame,
    *,
    skip_existing: str = "",
    constants: Mapping[str, Constant] | None = None,
) -> int:
    """Insert the rows (in the caller's transaction), each with the `constants` (column → one value for
    every row; datetimes naive UTC); with `skip_existing` (a unique column), rows whose value is already
    there are left out. Returns how many rows were inserted."""
    if rows.height == 0:
        return 0
    constants = dict(constants or {})
    if conn.dialect.name == "postgresql":
        return _copy(conn, table, rows.with_columns(_columns(constants)), skip_existing)
    return _executemany(conn, table, rows, skip_existing, constants)


def _naive(value: Constant) -> Constant:
    if isinstance(value, datetime) and value.tzinfo is not None:
        raise ValueError("bulk_insert takes naive UTC datetimes")
    return value


def _columns(constants: Mapping[str, Constant]) -> list[pl.Expr]:
    return [
        pl.lit(_naive(value), pl.Datetime("us") if isinstance(value, datetime) else None).alias(name)
        for name, value in constants.items()
    ]


def _sqlite_literal(value: Constant) -> str:
    """A constant written into the statement once, as SQLite stores what executemany would bind."""
    value = _naive(value)
    if value is None:
        return "NULL"
    if isinstance(value, datetime):
        value = value.strftime(_SQLITE_TIME_PY)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(int(value))  # an int (a bool as 0 or 1, as sqlite3 binds it)


def _executemany(
    conn: sa.Connection,
    table: sa.Table,
    rows: pl.DataFrame,
    skip_existing: str,
    constants: Mapping[str, Constant],
) -> int:
    # Constants are written into the statement, not bound per row: each bound value costs its share of
    # a Python tuple and of the binding, and a history row has five of them.
    as_text = rows.with_columns(pl.col(pl.Datetime).dt.strftime(SQLITE_TIME))
    verb = "INSERT OR IGNORE" if skip_existing else "INSERT"
    columns = ", ".join([*rows.columns, *constants])
    values = ", ".join([*("?" for _ in rows.columns), *map(_sqlite_literal, constants.values())])
    sql = f"{verb} INTO {table.name} ({columns}) VALUES ({values})"
    inserted = 0
    with closing(conn.connection.cursor()) as cursor:
        for block in as_text.iter_slices(_TUPLES):
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
        for block in rows.iter_slices(_COPIED):
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
