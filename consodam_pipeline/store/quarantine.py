"""The quarantine: records that could not be accepted, with the reason and the payload, until a later run
sees them fixed. Nothing stops the rest of the catalog and nothing vanishes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from consodam_pipeline.domain.timestamps import to_naive_utc, utcnow
from consodam_pipeline.store.bulk import chunks
from consodam_pipeline.store.schema import quarantine

REASON_LENGTH = 400
OPEN_COLUMNS: dict[str, pl.DataType] = {
    "source": pl.String(),
    "record_key": pl.String(),
    "reason": pl.String(),
    "first_seen_at": pl.Datetime("us"),
    "last_seen_at": pl.Datetime("us"),
}


class Quarantine:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def hold(
        self,
        conn: sa.Connection,
        source: str,
        rows: Sequence[tuple[str, str, str]],
        *,
        run_id: str | None = None,
        complete: bool = False,
        checked_keys: Sequence[str] | None = None,
    ) -> None:
        """Record (record_key, reason, payload) rows as quarantined; resolve ones that came back clean.

        With `complete=True` every open entry of the source not in `rows` is resolved; otherwise only
        entries whose key is in `checked_keys` (the records this batch re-examined) are.
        """
        now = to_naive_utc(utcnow())
        if rows:
            self._upsert(conn, source, rows, run_id, now)
        still_bad = {(r[0], r[1][:REASON_LENGTH]) for r in rows}
        q = quarantine
        open_q = sa.select(q.c.record_key, q.c.reason).where(q.c.source == source, q.c.resolved_at.is_(None))
        candidates: list[Any] = []
        if complete:
            candidates = list(conn.execute(open_q))
        elif checked_keys:
            for chunk in chunks(list(checked_keys)):
                candidates.extend(conn.execute(open_q.where(q.c.record_key.in_(chunk))))
        fixed = [{"k": k, "r": r} for k, r in candidates if (k, r) not in still_bad]
        if fixed:
            this = sa.and_(
                q.c.source == source, q.c.record_key == sa.bindparam("k"), q.c.reason == sa.bindparam("r")
            )
            conn.execute(sa.update(q).where(this).values(resolved_at=now), fixed)

    @staticmethod
    def _upsert(
        conn: sa.Connection, source: str, rows: Sequence[tuple[str, str, str]], run_id: str | None, now: Any
    ) -> None:
        stmt = (pg_insert if conn.dialect.name == "postgresql" else sqlite_insert)(quarantine)
        unique = {(r[0], r[1][:REASON_LENGTH]): r for r in rows}
        values = [
            {
                "source": source,
                "record_key": key,
                "reason": reason[:REASON_LENGTH],
                "payload": payload,
                "first_seen_at": now,
                "last_seen_at": now,
                "resolved_at": None,
                "run_id": run_id,
            }
            for key, reason, payload in unique.values()
        ]
        seen_again = {
            "last_seen_at": stmt.excluded.last_seen_at,
            "payload": stmt.excluded.payload,
            "resolved_at": None,
            "run_id": stmt.excluded.run_id,
        }
        conn.execute(
            stmt.on_conflict_do_update(index_elements=["source", "record_key", "reason"], set_=seen_again),
            values,
        )

    def open(self, source: str | None = None) -> pl.DataFrame:
        """What is held back now (of one source, or all): source, record_key, reason, since, last seen."""
        q = quarantine
        query = sa.select(*(q.c[name] for name in OPEN_COLUMNS)).where(q.c.resolved_at.is_(None))
        if source:
            query = query.where(q.c.source == source)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(q.c.source, q.c.record_key)).all()
        return pl.DataFrame([tuple(r) for r in rows], schema=OPEN_COLUMNS, orient="row")
