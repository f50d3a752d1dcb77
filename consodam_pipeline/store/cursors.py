"""Sync cursors: how far each source has been read. A cursor moves in the same transaction as the rows it
covers (the caller's connection), so a crash repeats work and never skips it."""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa

from consodam_pipeline.domain.timestamps import to_naive_utc, utcnow
from consodam_pipeline.store.bulk import chunks, upsert
from consodam_pipeline.store.schema import sync_cursor


class Cursors:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def get(self, name: str, conn: sa.Connection | None = None) -> str | None:
        query = sa.select(sync_cursor.c.value).where(sync_cursor.c.name == name)
        if conn is not None:
            return conn.execute(query).scalar_one_or_none()
        with self.engine.connect() as own:
            return own.execute(query).scalar_one_or_none()

    def set(self, conn: sa.Connection, name: str, value: str, run_id: str | None = None) -> None:
        self.set_many(conn, {name: value}, run_id)

    def set_many(self, conn: sa.Connection, values: Mapping[str, str], run_id: str | None = None) -> None:
        now = to_naive_utc(utcnow())
        rows = [{"name": n, "value": v, "updated_at": now, "run_id": run_id} for n, v in values.items()]
        upsert(conn, sync_cursor, rows, ["name"])

    def changed(self, conn: sa.Connection, values: Mapping[str, str]) -> frozenset[str]:
        """The names whose cursor is missing or holds another value than this."""
        held: dict[str, str] = {}
        for chunk in chunks(sorted(values)):
            query = sa.select(sync_cursor.c.name, sync_cursor.c.value).where(sync_cursor.c.name.in_(chunk))
            held.update({name: value for name, value in conn.execute(query)})
        return frozenset(name for name, value in values.items() if held.get(name) != value)

    def named_with(self, prefix: str) -> dict[str, str]:
        """Every cursor whose name starts with the prefix, and its value."""
        query = sa.select(sync_cursor.c.name, sync_cursor.c.value).where(
            sync_cursor.c.name.startswith(prefix, autoescape=True)  # "_" is not a wildcard here
        )
        with self.engine.connect() as conn:
            return {name: value for name, value in conn.execute(query)}

    def drop_unchanged(self, values: Mapping[str, str]) -> None:
        """Delete these cursors, each only while it still holds the value given (one set meanwhile stays)."""
        if not values:
            return
        with self.engine.begin() as conn:
            for name, value in values.items():
                conn.execute(
                    sa.delete(sync_cursor).where(sync_cursor.c.name == name, sync_cursor.c.value == value)
                )
