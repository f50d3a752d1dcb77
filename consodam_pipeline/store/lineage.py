"""Store primitives: snapshot diffs into row-level history, as-of reads, the ledger, cursors, quarantine.

Every write takes a Connection so callers compose several primitives (rows + cursor) in one
transaction: a crash can repeat work, never skip it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Any

import polars as pl
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from consodam_pipeline.store.bulk import bulk_insert
from consodam_pipeline.store.ledger import (
    EVENT_COLUMNS,
    LEDGER_UNINDEXED,
    append_event_frame,
    ledger_holds,
    with_event_ids,
)
from consodam_pipeline.store.schema import (
    asset_usage,
    audit_ledger,
    quarantine,
    record_history,
    record_subject,
    sync_cursor,
    write_failures,
    write_journal,
)

_CHUNK = 900  # stays under SQLite's bound-parameter limit for IN (...) lists


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def to_naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass(frozen=True)
class SnapshotDiff:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0

    @property
    def touched(self) -> int:
        return len(self.added) + len(self.changed) + len(self.removed)


@dataclass(frozen=True)
class AuditEvent:
    event_type: str
    occurred_at: datetime
    isbn13: str | None = None
    work_id: str | None = None
    dam_asset_id: str | None = None
    dam_version: int | None = None
    role: str | None = None
    actor: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    run_id: str | None = None
    identity: str | None = None  # when set, names the event instead of its time (writes replayed later)

    @cached_property
    def event_id(self) -> str:
        """Derived from what happened (not when we saw it), so a replay maps to the same id."""
        return str(events_frame([self])["event_id"][0])


def events_frame(events: Iterable[AuditEvent]) -> pl.DataFrame:
    """Events as ledger rows (store.ledger.EVENT_COLUMNS with event_id)."""
    listed = list(events)
    frame = pl.DataFrame(
        {
            "event_type": [e.event_type for e in listed],
            "occurred_at": [to_naive_utc(e.occurred_at) for e in listed],
            "isbn13": [e.isbn13 for e in listed],
            "work_id": [e.work_id for e in listed],
            "dam_asset_id": [e.dam_asset_id for e in listed],
            "dam_version": [e.dam_version for e in listed],
            "role": [e.role for e in listed],
            "actor": [e.actor for e in listed],
            "before_json": [canonical_json(e.before) for e in listed],
            "after_json": [canonical_json(e.after) for e in listed],
            "run_id": [e.run_id for e in listed],
            "identity": [e.identity for e in listed],
        },
        schema={**EVENT_COLUMNS, "identity": pl.String()},
    )
    return with_event_ids(frame)


def subjects_of(block: pl.DataFrame) -> pl.DataFrame:
    """(record_key, isbn13, work_id) from rows whose payload names them."""
    return block.select(
        "record_key",
        pl.col("payload").str.json_path_match("$.isbn13").alias("isbn13"),
        pl.col("payload").str.json_path_match("$.work_id").alias("work_id"),
    )


def canonical_json(payload: dict[str, Any] | None) -> str | None:
    """Compact, sorted keys, UTF-8 kept: the same text polars' struct.json_encode gives sorted fields."""
    if payload is None:
        return None
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _payload_slices(to_open: pl.DataFrame, records: pl.DataFrame) -> Iterator[pl.DataFrame]:
    rendered = to_open.join(records.select("record_key", "payload"), on="record_key", maintain_order="left")
    yield from rendered.iter_slices(50_000)


class LineageStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    @contextmanager
    def ledger_backfill(self, conn: sa.Connection, editions: int) -> Iterator[None]:
        """Appends of the history of `editions` editions, in the caller's transaction. On SQLite, when the
        ledger holds less than one event per such edition (a publisher's first backfill), its secondary
        indexes are built once when the appends are done instead of row by row, and each edition's events
        go in side by side: at 100k works, 6.7M events in 115 s instead of 276 s, in the same memory.
        Readers keep the committed ledger, indexes and all, until the transaction commits; a failure rolls
        the drop back."""
        if conn.dialect.name != "sqlite" or ledger_holds(conn, editions):
            yield
            return
        if not conn.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
            # pysqlite opens a transaction only before a DML statement: a DROP INDEX first in one would
            # be committed on its own, and a failed backfill would leave the ledger unindexed.
            conn.exec_driver_sql("BEGIN")
        for index in audit_ledger.indexes:
            index.drop(conn)
        conn.info[LEDGER_UNINDEXED] = True
        try:
            yield
        finally:
            conn.info.pop(LEDGER_UNINDEXED, None)
        for index in audit_ledger.indexes:
            index.create(conn)

    # ---- generic dialect-aware upsert ----

    def _insert(self, table: sa.Table) -> Any:
        return pg_insert(table) if self.engine.dialect.name == "postgresql" else sqlite_insert(table)

    def upsert(
        self, conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]
    ) -> None:
        """Insert rows; where the key exists, overwrite the non-key columns given."""
        if not rows:
            return
        stmt = self._insert(table)
        update_cols = {c: stmt.excluded[c] for c in rows[0] if c not in keys}
        conn.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=update_cols), list(rows))

    # ---- cursors ----

    def get_cursor(self, name: str, conn: sa.Connection | None = None) -> str | None:
        query = sa.select(sync_cursor.c.value).where(sync_cursor.c.name == name)
        if conn is not None:
            return conn.execute(query).scalar_one_or_none()
        with self.engine.connect() as own:
            return own.execute(query).scalar_one_or_none()

    def set_cursor(self, conn: sa.Connection, name: str, value: str, run_id: str | None = None) -> None:
        self.upsert(
            conn,
            sync_cursor,
            [{"name": name, "value": value, "updated_at": utcnow(), "run_id": run_id}],
            ["name"],
        )

    # ---- row-level history ----

    @staticmethod
    def _open_rows(
        conn: sa.Connection, entity: str, columns: Sequence[sa.Column[Any]], keys: Sequence[str] | None
    ) -> list[Any]:
        """The given columns of the open version of each record: all of them, or those with these keys."""
        base = sa.select(*columns).where(
            record_history.c.entity == entity, record_history.c.valid_to.is_(None)
        )
        if keys is None:
            return list(conn.execute(base))
        rows: list[Any] = []
        for chunk in _chunks(list(keys)):
            rows.extend(conn.execute(base.where(record_history.c.record_key.in_(chunk))))
        return rows

    def open_hashes(
        self, conn: sa.Connection, entity: str, keys: Sequence[str] | None = None
    ) -> pl.DataFrame:
        """(record_key, content_hash, id) of the open version of each record (all, or the given keys)."""
        cols = [record_history.c.record_key, record_history.c.content_hash, record_history.c.id]
        return pl.DataFrame(
            [tuple(r) for r in self._open_rows(conn, entity, cols, keys)],
            schema={"record_key": pl.String, "old_hash": pl.String, "id": pl.Int64},
            orient="row",
        )

    def apply_snapshot(
        self,
        conn: sa.Connection,
        entity: str,
        records: pl.DataFrame,
        *,
        observed_at: datetime,
        complete: bool,
        run_id: str | None = None,
        keep_open: Sequence[str] = (),
        payloads: Callable[[pl.DataFrame], Iterable[pl.DataFrame]] | None = None,
        subjects_in_payload: bool = False,
    ) -> SnapshotDiff:
        """Fold a batch of current records (record_key, content_hash, payload) into history.

        Changed records close their open version and open a new one at `observed_at`. With
        `complete=True` the batch is the whole population, so open records absent from it are closed
        (deletions), except those in `keep_open` (present at the source but quarantined this time: their
        last good version stays current). Re-applying the same batch writes nothing. `records` carries a
        payload column, or `payloads` renders the rows to open (record_key, content_hash → the same with
        payload, in the order given) chunk by chunk, so no caller holds every payload at once. With
        `subjects_in_payload`, the `isbn13` and `work_id` of each payload opened name its subject.
        """
        records = records.unique(subset="record_key", keep="last")
        keys = None if complete else records["record_key"].to_list()
        current = self.open_hashes(conn, entity, keys)
        joined = records.select("record_key", "content_hash").join(
            current, on="record_key", how="full", coalesce=True
        )
        added = joined.filter(pl.col("old_hash").is_null())
        changed = joined.filter(
            pl.col("old_hash").is_not_null()
            & pl.col("content_hash").is_not_null()
            & (pl.col("old_hash") != pl.col("content_hash"))
        )
        removed = (
            joined.filter(pl.col("content_hash").is_null() & ~pl.col("record_key").is_in(list(keep_open)))
            if complete
            else joined.clear()
        )
        moment = to_naive_utc(observed_at)
        to_close = pl.concat([changed["id"], removed["id"]]).to_list()
        close = (
            sa.update(record_history)
            .where(record_history.c.id == sa.bindparam("row_id"))
            .values(valid_to=moment)
        )
        for chunk in _chunks(to_close, 20_000):
            conn.execute(close, [{"row_id": rid} for rid in chunk])
        # In key order: the history indexes then grow at their right edge instead of at random pages.
        to_open = (
            pl.concat([added, changed], how="vertical_relaxed")
            .select("record_key", "content_hash")
            .sort("record_key")
        )
        rendered = payloads(to_open) if payloads else _payload_slices(to_open, records)
        recorded = utcnow()
        for block in rendered:
            rows = block.select("record_key", "content_hash", "payload").with_columns(
                pl.lit(entity).alias("entity"),
                pl.lit(moment, pl.Datetime("us")).alias("valid_from"),
                pl.lit(None, pl.Datetime("us")).alias("valid_to"),
                pl.lit(run_id, pl.String).alias("run_id"),
                pl.lit(recorded, pl.Datetime("us")).alias("recorded_at"),
            )
            bulk_insert(conn, record_history, rows)
            if subjects_in_payload:
                self.add_subjects(conn, entity, subjects_of(block))
        return SnapshotDiff(
            added=added["record_key"].to_list(),
            changed=changed["record_key"].to_list(),
            removed=removed["record_key"].to_list(),
            unchanged=joined.height - added.height - changed.height - removed.height,
        )

    def add_subjects(self, conn: sa.Connection, entity: str, subjects: pl.DataFrame) -> int:
        """Name the edition (isbn13) and work each record is about (record_key, isbn13, work_id; null for
        none); pairs already known are kept."""
        rows = (
            subjects.select(
                pl.lit(entity).alias("entity"),
                pl.col("record_key"),
                pl.col("isbn13").cast(pl.String).fill_null(""),
                pl.col("work_id").cast(pl.String).fill_null(""),
            )
            .filter((pl.col("isbn13") != "") | (pl.col("work_id") != ""))
            .unique()
        )
        return bulk_insert(conn, record_subject, rows, skip_existing="entity, record_key, isbn13, work_id")

    def iter_open_payloads(self, entity: str, chunk: int = 50_000) -> Iterator[list[str]]:
        """Payloads of every open record, streamed in chunks so memory stays flat at any catalog size."""
        query = (
            sa.select(record_history.c.payload)
            .where(record_history.c.entity == entity, record_history.c.valid_to.is_(None))
            .order_by(record_history.c.record_key)
        )
        with self.engine.connect() as conn:
            result = conn.execution_options(yield_per=chunk).execute(query)
            for rows in result.partitions():
                yield [r[0] for r in rows]

    def open_payload_map(self, entity: str, keys: Sequence[str]) -> dict[str, str]:
        """record_key → payload of the open version, for the given records that have one."""
        cols = [record_history.c.record_key, record_history.c.payload]
        with self.engine.connect() as conn:
            return {key: payload for key, payload in self._open_rows(conn, entity, cols, keys)}

    def as_of(self, entity: str, record_key: str, moment: datetime) -> dict[str, Any] | None:
        """The version of a record that was current at `moment`, or None."""
        at = to_naive_utc(moment)
        with self.engine.connect() as conn:
            payload = conn.execute(
                sa.select(record_history.c.payload)
                .where(
                    record_history.c.entity == entity,
                    record_history.c.record_key == record_key,
                    record_history.c.valid_from <= at,
                    sa.or_(record_history.c.valid_to.is_(None), record_history.c.valid_to > at),
                )
                .order_by(record_history.c.valid_from.desc())
                .limit(1)
            ).scalar_one_or_none()
        return None if payload is None else dict(json.loads(payload))

    def history(self, entity: str, record_key: str) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(record_history)
                .where(record_history.c.entity == entity, record_history.c.record_key == record_key)
                .order_by(record_history.c.valid_from, record_history.c.id)
            ).mappings()
            return [dict(r) for r in rows]

    def open_versions(self, entity: str, keys: Sequence[str]) -> pl.DataFrame:
        """(record_key, last_hash, last_at) of the open version of each given record."""
        cols = [record_history.c.record_key, record_history.c.content_hash, record_history.c.valid_from]
        with self.engine.connect() as conn:
            rows = self._open_rows(conn, entity, cols, keys)
        return pl.DataFrame(
            [tuple(r) for r in rows],
            schema={"record_key": pl.String, "last_hash": pl.String, "last_at": pl.Datetime("us")},
            orient="row",
        )

    def open_records(self, entity: str, keys: Sequence[str], *, with_handle: bool = True) -> pl.DataFrame:
        """(record_key, content_hash, valid_from, handle) of the open version of each given record; the
        handle is the id the write engine stored with it (null when not asked for or not stored)."""
        cols = [record_history.c.record_key, record_history.c.content_hash, record_history.c.valid_from]
        if with_handle:
            cols.append(record_history.c.payload)
        with self.engine.connect() as conn:
            rows = self._open_rows(conn, entity, cols, keys)
        schema: dict[str, pl.DataType] = {
            "record_key": pl.String(),
            "content_hash": pl.String(),
            "valid_from": pl.Datetime("us"),
        }
        if with_handle:
            schema["payload"] = pl.String()
        frame = pl.DataFrame([tuple(r) for r in rows], schema=schema, orient="row")
        if not with_handle:
            return frame.with_columns(pl.lit(None, pl.String).alias("handle"))
        return frame.with_columns(pl.col("payload").str.json_path_match("$.handle").alias("handle")).drop(
            "payload"
        )

    def open_keys(self, entity: str) -> list[str]:
        """Every record of the entity that has an open version."""
        with self.engine.connect() as conn:
            return [r[0] for r in self._open_rows(conn, entity, [record_history.c.record_key], None)]

    def close_records(self, conn: sa.Connection, entity: str, keys: Sequence[str], at: datetime) -> int:
        """End the open version of these records (the thing they describe is gone)."""
        closed = 0
        for chunk in _chunks(list(keys)):
            closed += conn.execute(
                sa.update(record_history)
                .where(
                    record_history.c.entity == entity,
                    record_history.c.valid_to.is_(None),
                    record_history.c.record_key.in_(chunk),
                )
                .values(valid_to=to_naive_utc(at))
            ).rowcount
        return closed

    # ---- the DAM's usage log ----

    def append_usage(self, conn: sa.Connection, rows: pl.DataFrame) -> int:
        """Usage rows (asset_usage columns); a row already there (same usage_id) is skipped."""
        return bulk_insert(
            conn,
            asset_usage,
            rows.with_columns(pl.lit(utcnow(), pl.Datetime("us")).alias("recorded_at")),
            skip_existing="usage_id",
        )

    # ---- write failures and the echo journal ----

    def track_failures(
        self,
        conn: sa.Connection,
        entity: str,
        failures: Sequence[tuple[str, str, str]],
        *,
        settled: Sequence[str],
        run_id: str | None,
    ) -> None:
        """Record (record_key, action, reason) failures, counting runs in a row; forget the settled keys
        (considered this run and not failing)."""
        now = utcnow()
        known = {
            r.record_key: r
            for r in conn.execute(sa.select(write_failures).where(write_failures.c.entity == entity))
        }
        failing = {key for key, _, _ in failures}
        gone = [k for k in set(settled) & set(known) if k not in failing]
        for chunk in _chunks(gone):
            conn.execute(
                sa.delete(write_failures).where(
                    write_failures.c.entity == entity, write_failures.c.record_key.in_(chunk)
                )
            )
        rows = []
        for key, action, reason in {f[0]: f for f in failures}.values():
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
                }
            )
        self.upsert(conn, write_failures, rows, ["entity", "record_key"])

    def failures(self, entity: str) -> pl.DataFrame:
        """Items of the entity that are pending after failing: key, action, reason, runs in a row."""
        query = sa.select(
            write_failures.c.record_key,
            write_failures.c.action,
            write_failures.c.reason,
            write_failures.c.consecutive_runs,
            write_failures.c.last_failed_at,
        ).where(write_failures.c.entity == entity)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(write_failures.c.record_key)).all()
        return pl.DataFrame(
            [tuple(r) for r in rows],
            schema={
                "record_key": pl.String,
                "action": pl.String,
                "reason": pl.String,
                "consecutive_runs": pl.Int64,
                "last_failed_at": pl.Datetime("us"),
            },
            orient="row",
        )

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
        now = utcnow()
        fields = fields or {}
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
        for start in range(0, len(rows), 5000):
            self.upsert(conn, write_journal, rows[start : start + 5000], ["system", "object_key"])

    def journal_fields(self, system: str, keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        """object key → the record fields consodam's last write to it set (for objects whose write set any)."""
        found: dict[str, dict[str, Any]] = {}
        base = sa.select(write_journal.c.object_key, write_journal.c.fields).where(
            write_journal.c.system == system, write_journal.c.fields.is_not(None)
        )
        with self.engine.connect() as conn:
            for chunk in _chunks(list(keys)):
                for key, text in conn.execute(base.where(write_journal.c.object_key.in_(chunk))):
                    found[key] = json.loads(text)
        return found

    def journal(self, system: str, keys: Sequence[str]) -> dict[str, str]:
        """object key → the stamp the system showed right after consodam's last write to it."""
        found: dict[str, str] = {}
        base = sa.select(write_journal.c.object_key, write_journal.c.stamp).where(
            write_journal.c.system == system
        )
        with self.engine.connect() as conn:
            for chunk in _chunks(list(keys)):
                for key, stamp in conn.execute(base.where(write_journal.c.object_key.in_(chunk))):
                    found[key] = stamp
        return found

    def count_open(self, entity: str) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count())
                    .select_from(record_history)
                    .where(record_history.c.entity == entity, record_history.c.valid_to.is_(None))
                ).scalar_one()
            )

    # ---- audit ledger ----

    def append_events(self, conn: sa.Connection, events: Iterable[AuditEvent] | pl.DataFrame) -> int:
        """Insert events not yet in the ledger; returns how many were new (replays add nothing).

        Takes AuditEvents, or a frame of ledger rows with event ids (store.ledger.with_event_ids).
        """
        frame = events if isinstance(events, pl.DataFrame) else events_frame(events)
        return append_event_frame(conn, frame, utcnow())

    def events_for_isbn(self, isbn13: str, until: datetime | None = None) -> list[dict[str, Any]]:
        query = sa.select(audit_ledger).where(audit_ledger.c.isbn13 == isbn13)
        if until is not None:
            query = query.where(audit_ledger.c.occurred_at <= to_naive_utc(until))
        with self.engine.connect() as conn:
            rows = conn.execute(
                query.order_by(audit_ledger.c.occurred_at, audit_ledger.c.event_id)
            ).mappings()
            return [dict(r) for r in rows]

    def ledger_size(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(audit_ledger)).scalar_one())

    # ---- quarantine ----

    def quarantine_records(
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
        now = utcnow()
        if rows:
            stmt = self._insert(quarantine)
            payload_rows = [
                {
                    "source": source,
                    "record_key": key,
                    "reason": reason[:400],
                    "payload": payload,
                    "first_seen_at": now,
                    "last_seen_at": now,
                    "resolved_at": None,
                    "run_id": run_id,
                }
                for key, reason, payload in {(r[0], r[1][:400]): r for r in rows}.values()
            ]
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["source", "record_key", "reason"],
                    set_={
                        "last_seen_at": stmt.excluded.last_seen_at,
                        "payload": stmt.excluded.payload,
                        "resolved_at": None,
                        "run_id": stmt.excluded.run_id,
                    },
                ),
                payload_rows,
            )
        still_bad = {(r[0], r[1][:400]) for r in rows}
        open_q = sa.select(quarantine.c.record_key, quarantine.c.reason).where(
            quarantine.c.source == source, quarantine.c.resolved_at.is_(None)
        )
        candidates: list[Any] = []
        if complete:
            candidates = list(conn.execute(open_q))
        elif checked_keys:
            for chunk in _chunks(list(checked_keys)):
                candidates.extend(conn.execute(open_q.where(quarantine.c.record_key.in_(chunk))))
        fixed = [{"k": k, "r": r} for k, r in candidates if (k, r) not in still_bad]
        if fixed:
            conn.execute(
                sa.update(quarantine)
                .where(
                    quarantine.c.source == source,
                    quarantine.c.record_key == sa.bindparam("k"),
                    quarantine.c.reason == sa.bindparam("r"),
                )
                .values(resolved_at=now),
                fixed,
            )

    def open_quarantine(self, source: str | None = None) -> pl.DataFrame:
        query = sa.select(
            quarantine.c.source, quarantine.c.record_key, quarantine.c.reason, quarantine.c.last_seen_at
        ).where(quarantine.c.resolved_at.is_(None))
        if source:
            query = query.where(quarantine.c.source == source)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(quarantine.c.source, quarantine.c.record_key)).all()
        return pl.DataFrame(
            [tuple(r) for r in rows],
            schema={
                "source": pl.String,
                "record_key": pl.String,
                "reason": pl.String,
                "last_seen_at": pl.Datetime("us"),
            },
            orient="row",
        )
