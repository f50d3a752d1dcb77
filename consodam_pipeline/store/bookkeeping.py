"""The write engine's bookkeeping: items that failed (how many runs in a row), and the echo journal (the
stamp each system showed right after consodam wrote an object, and the record fields that write set)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl
import sqlalchemy as sa

from consodam_pipeline.domain.canonical import canonical_json
from consodam_pipeline.domain.timestamps import to_naive_utc, utcnow
from consodam_pipeline.store.bulk import chunks, upsert
from consodam_pipeline.store.schema import write_failures, write_journal

FAILURE_COLUMNS: dict[str, pl.DataType] = {
    "record_key": pl.String(),
    "action": pl.String(),
    "reason": pl.String(),
    "consecutive_runs": pl.Int64(),
    "last_failed_at": pl.Datetime("us"),
}


@dataclass(frozen=True)
class PendingPeriod:
    period: str
    items: int
    runs_in_a_row: int
    last_failed_at: datetime


class WriteBookkeeping:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def track_failures(
        self,
        conn: sa.Connection,
        entity: str,
        failures: Sequence[tuple[str, str, str]],
        *,
        settled: Sequence[str],
        run_id: str | None,
        periods: Mapping[str, str | None] | None = None,
    ) -> None:
        """Record (record_key, action, reason) failures, counting runs in a row, with each item's period
        where known; forget the settled keys (considered this run and not failing)."""
        f, now = write_failures, to_naive_utc(utcnow())
        known = {r.record_key: r for r in conn.execute(sa.select(f).where(f.c.entity == entity))}
        failing = {key for key, _, _ in failures}
        for chunk in chunks([k for k in set(settled) & set(known) if k not in failing]):
            conn.execute(sa.delete(f).where(f.c.entity == entity, f.c.record_key.in_(chunk)))
        rows = []
        for key, action, reason in {failure[0]: failure for failure in failures}.values():
            before = known.get(key)
            runs = 1 if before is None else before.consecutive_runs + (before.run_id != run_id)
            rows.append(
                {
                    "entity": entity,
                    "record_key": key,
                    "action": action,
                    "reason": reason[:2000],
                    "first_failed_at": before.first_failed_at if before else now,
                    "last_failed_at": now,
                    "consecutive_runs": runs,
                    "run_id": run_id,
                    "period": (periods or {}).get(key) or (before.period if before else None),
                }
            )
        upsert(conn, f, rows, ["entity", "record_key"])

    def failures(self, entity: str) -> pl.DataFrame:
        """Items of the entity that are pending after failing: key, action, reason, runs in a row."""
        f = write_failures
        query = sa.select(*(f.c[name] for name in FAILURE_COLUMNS)).where(f.c.entity == entity)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(f.c.record_key)).all()
        return pl.DataFrame([tuple(r) for r in rows], schema=FAILURE_COLUMNS, orient="row")

    def pending_count(self) -> int:
        """Items any write asset failed to write and has not written since."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(write_failures)).scalar_one())

    def pending_periods(self) -> list[PendingPeriod]:
        """Periods holding pending writes: how many items, the most runs in a row one has failed, and
        when the last failed."""
        f = write_failures
        query = (
            sa.select(
                f.c.period,
                sa.func.count(),
                sa.func.max(f.c.consecutive_runs),
                sa.func.max(f.c.last_failed_at),
            )
            .where(f.c.period.is_not(None))
            .group_by(f.c.period)
            .order_by(f.c.period)
        )
        with self.engine.connect() as conn:
            return [PendingPeriod(*row) for row in conn.execute(query)]

    def journal_writes(
        self,
        conn: sa.Connection,
        system: str,
        stamps: dict[str, str],
        *,
        fields: dict[str, dict[str, Any]] | None = None,
        run_id: str | None,
    ) -> None:
        """Record, per object written, the stamp the system showed after the write and the record fields
        the write set (as the ingest names them)."""
        now, fields = to_naive_utc(utcnow()), fields or {}
        rows = [
            {
                "system": system,
                "object_key": key,
                "stamp": stamp,
                "written_at": now,
                "run_id": run_id,
                "fields": canonical_json(fields[key]) if key in fields else None,
            }
            for key, stamp in stamps.items()
        ]
        for block in chunks(rows, 5000):
            upsert(conn, write_journal, block, ["system", "object_key"])

    def journal_fields(self, system: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """object key → the record fields consodam's last write to it set (for objects whose write set any)."""
        j = write_journal
        query = sa.select(j.c.object_key, j.c.fields).where(j.c.system == system, j.c.fields.is_not(None))
        return {key: json.loads(text) for key, text in self._journal(query, keys)}

    def journal_entries(self, system: str) -> dict[str, tuple[dict[str, Any], datetime]]:
        """object key → (the record fields consodam's last write to it set, when), for writes that set any."""
        j = write_journal
        query = sa.select(j.c.object_key, j.c.fields, j.c.written_at).where(
            j.c.system == system, j.c.fields.is_not(None)
        )
        with self.engine.connect() as conn:
            return {key: (json.loads(text), at) for key, text, at in conn.execute(query)}

    def journal(self, system: str, keys: Sequence[str]) -> dict[str, str]:
        """object key → the stamp the system showed right after consodam's last write to it."""
        query = sa.select(write_journal.c.object_key, write_journal.c.stamp).where(
            write_journal.c.system == system
        )
        return dict(self._journal(query, keys))

    def _journal(self, query: sa.Select[Any], keys: Sequence[str]) -> list[tuple[str, Any]]:
        found: list[tuple[str, Any]] = []
        with self.engine.connect() as conn:
            for chunk in chunks(list(keys)):
                found.extend(
                    tuple(r) for r in conn.execute(query.where(write_journal.c.object_key.in_(chunk)))
                )
        return found
