"""A publisher's first backfill: the ledger's indexes built once, by sorting, instead of row by row.

At 100k works a first backfill appends 6.7M events; placing each content-derived id at a random page of
the ids' index was most of its time. While the appends go in, no index is maintained:

- SQLite: the ledger's indexes are dropped inside the backfill's transaction and built again at its end.
  Readers keep the committed ledger (WAL), and a failure rolls the drop back.
- PostgreSQL: dropping an index would lock readers out for the whole backfill, so the events go into a
  table beside the ledger, without indexes; at the end its indexes are built, then the ledger is locked, the
  rows it holds (those other runs committed meanwhile included) are copied in, and the new table takes its
  name, indexes and grants. Readers keep the old ledger until that last moment, when they wait for the
  commit. Only one backfill at a time does this, and only on a ledger that this role owns and nothing
  else (a view, a trigger, a publication) depends on; otherwise the events are appended as usual.

In both the appends leave out the ids the ledger held when they began; an event appended twice meanwhile
is removed when the unique index is built, one another run committed meanwhile (PostgreSQL) at the swap,
and each is counted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import polars as pl
import sqlalchemy as sa

from consodam_pipeline.store.bulk import drop_in_transaction, holds
from consodam_pipeline.store.engine import PG_SCHEMA
from consodam_pipeline.store.locks import lock_key
from consodam_pipeline.store.schema import audit_ledger

# On a connection while a first backfill appends: an `Appending`.
LEDGER_APPENDING = "consodam_ledger_appending"
_BESIDE = "audit_ledger_backfill"
_BESIDE_INDEX = "{}_backfill"
_SWAP_LOCK = "ledger:first-backfill"


@dataclass
class Backfill:
    duplicates: int = 0  # events appended twice (or also committed by another run), removed at the end


@dataclass
class Appending:
    held: pl.Series  # the ids the ledger held when the appends began (fewer than the editions)
    into: sa.Table  # where the appends go: the ledger itself (SQLite) or the table beside it


def ledger_holds(conn: sa.Connection, rows: int) -> bool:
    return holds(conn, audit_ledger, rows)


@contextmanager
def first_backfill(conn: sa.Connection, editions: int) -> Iterator[Backfill]:
    """Appends of the history of `editions` editions, in the caller's transaction; when the ledger holds
    less than one event per such edition, with its indexes built once at the end."""
    appended = Backfill()
    if ledger_holds(conn, editions):
        yield appended
    elif conn.dialect.name == "sqlite":
        with _unindexed(conn, appended):
            yield appended
    elif _may_build_beside(conn):
        with _beside(conn, appended):
            yield appended
    else:
        yield appended


def _held_ids(conn: sa.Connection) -> pl.Series:
    return pl.Series(conn.execute(sa.select(audit_ledger.c.event_id)).scalars().all(), dtype=pl.String)


@contextmanager
def _appending(conn: sa.Connection, appending: Appending) -> Iterator[None]:
    conn.info[LEDGER_APPENDING] = appending
    try:
        yield
    finally:
        conn.info.pop(LEDGER_APPENDING, None)


@contextmanager
def _unindexed(conn: sa.Connection, appended: Backfill) -> Iterator[None]:
    drop_in_transaction(conn, audit_ledger.indexes)
    held = _held_ids(conn)  # read under the write lock the drop took: no other run appends meanwhile
    with _appending(conn, Appending(held, audit_ledger)):
        yield
    appended.duplicates = _build_indexes(conn, audit_ledger, list(audit_ledger.indexes))


def _may_build_beside(conn: sa.Connection) -> bool:
    """The only first backfill under way (the others append as usual), by the ledger's owner with CREATE
    in its schema, with nothing but the ledger's own indexes and types depending on it."""
    may = conn.execute(
        sa.text(
            "SELECT pg_try_advisory_xact_lock(:key) AND c.relowner = r.oid"
            " AND has_schema_privilege(c.relnamespace, 'CREATE')"
            " AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.refclassid = 'pg_class'::regclass"
            "   AND d.refobjid = c.oid AND d.classid NOT IN ('pg_class'::regclass, 'pg_type'::regclass))"
            " FROM pg_class c JOIN pg_roles r ON r.rolname = current_user"
            " WHERE c.oid = CAST(:ledger AS regclass)"
        ),
        {"key": lock_key(_SWAP_LOCK), "ledger": f"{PG_SCHEMA}.{audit_ledger.name}"},
    ).scalar_one()
    return bool(may)


def _beside_table() -> tuple[sa.Table, list[sa.Index]]:
    table = sa.Table(
        _BESIDE,
        sa.MetaData(),
        *(sa.Column(c.name, c.type, nullable=c.nullable) for c in audit_ledger.columns),
    )
    indexes = [
        sa.Index(
            _BESIDE_INDEX.format(index.name),
            *(table.c[column.name] for column in index.columns),
            unique=index.unique,
        )
        for index in audit_ledger.indexes
    ]
    return table, indexes


@contextmanager
def _beside(conn: sa.Connection, appended: Backfill) -> Iterator[None]:
    ledger = f"{PG_SCHEMA}.{audit_ledger.name}"
    table, indexes = _beside_table()
    held = _held_ids(conn)
    conn.exec_driver_sql(
        f"CREATE TABLE {PG_SCHEMA}.{_BESIDE} (LIKE {ledger} INCLUDING ALL EXCLUDING INDEXES)"
    )
    with _appending(conn, Appending(held, table)):
        yield
    appended.duplicates = _build_indexes(conn, table, indexes)
    conn.exec_driver_sql(f"ANALYZE {PG_SCHEMA}.{_BESIDE}")  # the audit's plans need statistics at once
    # From here everyone else waits until the commit. The lock is taken whole at once: a run holding a
    # read lock on the ledger would deadlock with a lock that had to grow from writers-only to the DROP's.
    conn.exec_driver_sql(f"LOCK TABLE {ledger} IN ACCESS EXCLUSIVE MODE")
    columns = ", ".join(c.name for c in audit_ledger.columns)
    appended.duplicates += conn.exec_driver_sql(
        f"DELETE FROM {PG_SCHEMA}.{_BESIDE} b USING {ledger} a WHERE b.event_id = a.event_id"
    ).rowcount
    conn.exec_driver_sql(f"INSERT INTO {PG_SCHEMA}.{_BESIDE} ({columns}) SELECT {columns} FROM {ledger}")
    _grant_as_before(conn, ledger)
    conn.exec_driver_sql(f"DROP TABLE {ledger}")
    conn.exec_driver_sql(f"ALTER TABLE {PG_SCHEMA}.{_BESIDE} RENAME TO {audit_ledger.name}")
    for index in audit_ledger.indexes:
        conn.exec_driver_sql(
            f"ALTER INDEX {PG_SCHEMA}.{_BESIDE_INDEX.format(index.name)} RENAME TO {index.name}"
        )


def _grant_as_before(conn: sa.Connection, ledger: str) -> None:
    """The privileges other roles held on the ledger, on the table that takes its place."""
    grants = conn.execute(
        sa.text(
            "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END,"
            " a.privilege_type, a.is_grantable"
            " FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a"
            " LEFT JOIN pg_roles r ON r.oid = a.grantee"
            " WHERE c.oid = CAST(:ledger AS regclass) AND a.grantee <> c.relowner"
        ),
        {"ledger": ledger},
    ).all()
    for grantee, privilege, grantable in grants:
        option = " WITH GRANT OPTION" if grantable else ""
        conn.exec_driver_sql(f"GRANT {privilege} ON {PG_SCHEMA}.{_BESIDE} TO {grantee}{option}")


def _build_indexes(conn: sa.Connection, table: sa.Table, indexes: list[sa.Index]) -> int:
    """Build the indexes, the unique one first; returns how many rows were removed for it (ids appended
    twice while it was deferred: the appends drop the ids held before, not each other's)."""
    removed = 0
    for index in sorted(indexes, key=lambda index: not index.unique):
        if index.unique:
            removed = _build_unique(conn, table, index)
        else:
            index.create(conn)
    return removed


def _build_unique(conn: sa.Connection, table: sa.Table, index: sa.Index) -> int:
    try:
        if conn.dialect.name == "sqlite":  # SQLite undoes the failed statement, not the transaction
            index.create(conn)
        else:
            with conn.begin_nested():
                index.create(conn)
        return 0
    except sa.exc.IntegrityError:
        removed = conn.exec_driver_sql(
            f"DELETE FROM {table.name} WHERE rowid NOT IN"
            f" (SELECT MIN(rowid) FROM {table.name} GROUP BY event_id)"
            if conn.dialect.name == "sqlite"
            else f"DELETE FROM {PG_SCHEMA}.{table.name} a USING {PG_SCHEMA}.{table.name} b"
            " WHERE a.event_id = b.event_id AND a.ctid > b.ctid"
        ).rowcount
    index.create(conn)
    return removed
