"""Sync cursors: how far each source has been read. A cursor moves in the same transaction as the rows it
covers (the caller's connection), so a crash repeats work and never skips it."""

from __future__ import annotations

import sqlalchemy as sa

from consodam_pipeline.domain.timestamps import to_naive_utc, utcnow
from consodam_pipeline.store.bulk import upsert
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
        row = {"name": name, "value": value, "updated_at": to_naive_utc(utcnow()), "run_id": run_id}
        upsert(conn, sync_cursor, [row], ["name"])
