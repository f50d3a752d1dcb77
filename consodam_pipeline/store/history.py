"""Row-level history: every version of every record consodam read or wrote, with valid_from / valid_to.

The open version of a record has valid_to NULL (one per record, enforced by a partial unique index);
every as-of answer relies on that. Writes take a Connection so callers put rows, cursors and ledger events
in one transaction: a crash can repeat work, never skip it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl
import sqlalchemy as sa

from consodam_pipeline.domain.timestamps import to_naive_utc, utcnow
from consodam_pipeline.store.bulk import (
    Constant,
    bulk_insert,
    chunks,
    computed_ahead,
    drop_in_transaction,
    holds,
)
from consodam_pipeline.store.engine import page_cache
from consodam_pipeline.store.schema import record_history, record_subject

# SQLite's page cache while history rows are opened and their subjects named (KiB): the subjects' two
# indexes are ordered by ISBN and by work, not by the record keys the rows arrive in.
OPEN_CACHE_KIB = 64 * 1024
# The subjects of opened rows are gathered over this many rows and appended together, in key order: block
# by block, between the history rows, the two tables' pages pushed each other out of that cache (a first
# DAM ingest of 354k versions: history 5.3 s and subjects 1.9 s block by block, 3.7 s and 1.6 s gathered).
SUBJECTS_GATHERED = 500_000


@dataclass(frozen=True)
class SnapshotDiff:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0

    @property
    def touched(self) -> int:
        return len(self.added) + len(self.changed) + len(self.removed)


SUBJECT_COLUMNS = ("isbn13", "work_id")


def subjects_of(block: pl.DataFrame) -> pl.DataFrame:
    """(record_key, isbn13, work_id) of rows whose payload names them: the block's own isbn13 and work_id
    columns (text) where it carries them, else read from the payload."""
    if all(c in block.columns for c in SUBJECT_COLUMNS):
        return block.select("record_key", *SUBJECT_COLUMNS)
    return block.select(
        "record_key",
        *[pl.col("payload").str.json_path_match(f"$.{c}").alias(c) for c in SUBJECT_COLUMNS],
    )


@contextmanager
def subjects_indexed_after(conn: sa.Connection, naming: int) -> Iterator[None]:
    """Around appends naming the subjects of `naming` records: when that is at least as many as the
    subjects table holds (a first ingest), on SQLite its two secondary indexes (by ISBN, by work) are
    built once at the end, by one sort, instead of taking each row at a random page of them. In the
    caller's transaction: readers keep the committed table (WAL), a failure brings the indexes back.
    PostgreSQL keeps them (dropping one there would lock its readers out until the commit)."""
    if conn.dialect.name != "sqlite" or naming == 0 or holds(conn, record_subject, naming):
        yield
        return
    indexes = sorted(record_subject.indexes, key=lambda index: str(index.name))
    drop_in_transaction(conn, indexes)
    yield
    for index in indexes:
        index.create(conn)


def _payload_slices(to_open: pl.DataFrame, records: pl.DataFrame) -> Iterator[pl.DataFrame]:
    rendered = to_open.join(records.select("record_key", "payload"), on="record_key", maintain_order="left")
    yield from rendered.iter_slices(50_000)


def _open_rows(
    conn: sa.Connection, entity: str, columns: Sequence[sa.Column[Any]], keys: Sequence[str] | None
) -> list[Any]:
    """The given columns of the open version of each record: all of them, or those with these keys."""
    base = sa.select(*columns).where(record_history.c.entity == entity, record_history.c.valid_to.is_(None))
    if keys is None:
        return list(conn.execute(base))
    rows: list[Any] = []
    for chunk in chunks(list(keys)):
        rows.extend(conn.execute(base.where(record_history.c.record_key.in_(chunk))))
    return rows


def _open(
    conn: sa.Connection,
    entity: str,
    blocks: Iterable[pl.DataFrame],
    moment: datetime,
    run_id: str | None,
    subjects_in_payload: bool,
) -> None:
    recorded = to_naive_utc(utcnow())
    constants: dict[str, Constant] = {
        "entity": entity,
        "valid_from": moment,
        "valid_to": None,
        "run_id": run_id,
        "recorded_at": recorded,
    }
    named: list[pl.DataFrame] = []
    for block in computed_ahead(blocks):
        rows = block.select("record_key", "content_hash", "payload")
        bulk_insert(conn, record_history, rows, constants=constants)
        if subjects_in_payload:
            named.append(subjects_of(block))
        if sum(frame.height for frame in named) >= SUBJECTS_GATHERED:
            append_subjects(conn, entity, pl.concat(named))
            named.clear()
    if named:
        append_subjects(conn, entity, pl.concat(named))


def append_subjects(conn: sa.Connection, entity: str, subjects: pl.DataFrame) -> int:
    """The subject rows of these records (record_key, isbn13, work_id; null for none) not yet there."""
    rows = (
        subjects.select(
            pl.col("record_key"),
            pl.col("isbn13").cast(pl.String).fill_null(""),
            pl.col("work_id").cast(pl.String).fill_null(""),
        )
        .filter((pl.col("isbn13") != "") | (pl.col("work_id") != ""))
        .unique()
        # In the key's order: the rows then land at the right edge of its index, not at random pages
        # of it (a first ingest's blocks arrive in record-key order).
        .sort("record_key", "isbn13", "work_id")
    )
    return bulk_insert(
        conn,
        record_subject,
        rows,
        skip_existing="entity, record_key, isbn13, work_id",
        constants={"entity": entity},
    )


class RecordHistory:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def open_hashes(
        self, conn: sa.Connection, entity: str, keys: Sequence[str] | None = None
    ) -> pl.DataFrame:
        """(record_key, old_hash, id) of the open version of each record (all, or the given keys)."""
        cols = [record_history.c.record_key, record_history.c.content_hash, record_history.c.id]
        return pl.DataFrame(
            [tuple(r) for r in _open_rows(conn, entity, cols, keys)],
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
        payload column, or `payloads` gives the rows to open (record_key, content_hash → the same with
        payload, in the order given) chunk by chunk, so no caller holds every payload at once. With
        `subjects_in_payload`, the `isbn13` and `work_id` of each payload opened name its subject (taken
        from the blocks' own columns of those names, when they carry them).
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
        gone = pl.col("content_hash").is_null() & ~pl.col("record_key").is_in(list(keep_open))
        removed = joined.filter(gone) if complete else joined.clear()
        moment = to_naive_utc(observed_at)
        close = (
            sa.update(record_history)
            .where(record_history.c.id == sa.bindparam("row_id"))
            .values(valid_to=moment)
        )
        for chunk in chunks(pl.concat([changed["id"], removed["id"]]).to_list(), 20_000):
            conn.execute(close, [{"row_id": rid} for rid in chunk])
        # In key order: the history indexes then grow at their right edge instead of at random pages.
        to_open = (
            pl.concat([added, changed], how="vertical_relaxed")
            .select("record_key", "content_hash")
            .sort("record_key")
        )
        blocks = payloads(to_open) if payloads else _payload_slices(to_open, records)
        naming = to_open.height if subjects_in_payload else 0
        with page_cache(conn, OPEN_CACHE_KIB), subjects_indexed_after(conn, naming):
            _open(conn, entity, blocks, moment, run_id, subjects_in_payload)
        return SnapshotDiff(
            added=added["record_key"].to_list(),
            changed=changed["record_key"].to_list(),
            removed=removed["record_key"].to_list(),
            unchanged=joined.height - added.height - changed.height - removed.height,
        )

    def add_subjects(self, conn: sa.Connection, entity: str, subjects: pl.DataFrame) -> int:
        """Name the edition (isbn13) and work each record is about (record_key, isbn13, work_id; null for
        none); pairs already known are kept."""
        return append_subjects(conn, entity, subjects)

    def subjects(self, entity: str, keys: Sequence[str]) -> dict[str, dict[str, str | None]]:
        """record key → the edition (isbn13) and work the record was last named about, for those named."""
        s = record_subject
        found: dict[str, dict[str, str | None]] = {}
        query = sa.select(s.c.record_key, s.c.isbn13, s.c.work_id).where(s.c.entity == entity)
        with self.engine.connect() as conn:
            for chunk in chunks(list(keys)):
                for key, isbn, work in conn.execute(query.where(s.c.record_key.in_(chunk))):
                    named = found.setdefault(key, {"isbn13": None, "work_id": None})
                    named["isbn13"] = named["isbn13"] or isbn or None
                    named["work_id"] = named["work_id"] or work or None
        return found

    def keys_about(self, entity: str, isbns: Sequence[str], works: Sequence[str]) -> set[str]:
        """The records of the entity named about these editions (by ISBN) or their works' own (by work)."""
        s, found = record_subject, set()
        base = sa.select(s.c.record_key).where(s.c.entity == entity)
        with self.engine.connect() as conn:
            for chunk in chunks(list(isbns)):
                found |= set(conn.execute(base.where(s.c.isbn13.in_(chunk))).scalars())
            for chunk in chunks(list(works)):
                found |= set(conn.execute(base.where(s.c.isbn13 == "", s.c.work_id.in_(chunk))).scalars())
        return found

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
            return {key: payload for key, payload in _open_rows(conn, entity, cols, keys)}

    def as_of(self, entity: str, record_key: str, moment: datetime) -> dict[str, Any] | None:
        """The version of a record that was current at `moment`, or None."""
        at, h = to_naive_utc(moment), record_history
        current = sa.or_(h.c.valid_to.is_(None), h.c.valid_to > at)
        this = sa.and_(h.c.entity == entity, h.c.record_key == record_key)
        query = sa.select(h.c.payload).where(this, h.c.valid_from <= at, current)
        with self.engine.connect() as conn:
            payload = conn.execute(query.order_by(h.c.valid_from.desc()).limit(1)).scalar_one_or_none()
        return None if payload is None else dict(json.loads(payload))

    def versions(self, entity: str, record_key: str) -> list[dict[str, Any]]:
        """Every version of one record, oldest first."""
        h = record_history
        query = sa.select(h).where(h.c.entity == entity, h.c.record_key == record_key)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query.order_by(h.c.valid_from, h.c.id)).mappings()]

    def open_versions(self, entity: str, keys: Sequence[str]) -> pl.DataFrame:
        """(record_key, last_hash, last_at) of the open version of each given record."""
        cols = [record_history.c.record_key, record_history.c.content_hash, record_history.c.valid_from]
        with self.engine.connect() as conn:
            rows = _open_rows(conn, entity, cols, keys)
        schema: dict[str, Any] = {
            "record_key": pl.String,
            "last_hash": pl.String,
            "last_at": pl.Datetime("us"),
        }
        return pl.DataFrame([tuple(r) for r in rows], schema=schema, orient="row")

    def open_records(self, entity: str, keys: Sequence[str], *, with_handle: bool = True) -> pl.DataFrame:
        """(record_key, content_hash, valid_from, handle) of the open version of each given record; the
        handle is the id the write engine stored with it (null when not asked for or not stored)."""
        h = record_history
        cols = [h.c.record_key, h.c.content_hash, h.c.valid_from, *([h.c.payload] if with_handle else [])]
        with self.engine.connect() as conn:
            rows = _open_rows(conn, entity, cols, keys)
        schema = {"record_key": pl.String(), "content_hash": pl.String(), "valid_from": pl.Datetime("us")}
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
            return [r[0] for r in _open_rows(conn, entity, [record_history.c.record_key], None)]

    def reaffirm(self, conn: sa.Connection, entity: str, keys: Sequence[str], at: datetime) -> int:
        """The source showed these records again at `at`, unchanged: each open version ends and an identical
        one begins then, so "what the source showed last" is known from `at` (a field consodam wrote in
        between, and a person set back, is the source's again)."""
        h, moment, again = record_history, to_naive_utc(at), 0
        copied = [h.c.entity, h.c.record_key, h.c.content_hash, h.c.payload, h.c.run_id]
        for chunk in chunks(list(keys)):
            still_open = sa.and_(h.c.entity == entity, h.c.valid_to.is_(None), h.c.record_key.in_(chunk))
            rows = [dict(r) for r in conn.execute(sa.select(*copied).where(still_open)).mappings()]
            conn.execute(sa.update(h).where(still_open).values(valid_to=moment))
            recorded = to_naive_utc(utcnow())
            if rows:
                conn.execute(
                    sa.insert(h),
                    [r | {"valid_from": moment, "valid_to": None, "recorded_at": recorded} for r in rows],
                )
            again += len(rows)
        return again

    def close_records(self, conn: sa.Connection, entity: str, keys: Sequence[str], at: datetime) -> int:
        """End the open version of these records (the thing they describe is gone)."""
        h, closed = record_history, 0
        for chunk in chunks(list(keys)):
            still_open = sa.and_(h.c.entity == entity, h.c.valid_to.is_(None), h.c.record_key.in_(chunk))
            closed += conn.execute(sa.update(h).where(still_open).values(valid_to=to_naive_utc(at))).rowcount
        return closed

    def count_open(self, entity: str) -> int:
        h = record_history
        query = sa.select(sa.func.count()).select_from(h).where(h.c.entity == entity, h.c.valid_to.is_(None))
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())
