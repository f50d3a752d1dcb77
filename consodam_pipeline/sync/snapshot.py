"""Committing an ingest batch (history rows, quarantine and cursors in one transaction) and building the
current snapshot from it.

A crash before the commit loses nothing (the cursor has not moved, the next run fetches again); a
crash after it repeats nothing (the rows are there and the diff of a replay is empty).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from consodam_pipeline.store.history import SUBJECT_COLUMNS, SnapshotDiff
from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.sync.spool import SEQ, Spool, key_text

PAYLOAD = "_payload"


def render_payloads(records: pl.DataFrame) -> pl.Series:
    """Each row as JSON, fields in schema order: the stored payload and the input of the content hash."""
    return records.select(pl.struct(pl.all()).struct.json_encode().alias("payload")).to_series()


@dataclass
class IngestBatch:
    """What one ingest fetched: good records spooled to disk with their content hashes in memory, rejected
    ones with reasons, completeness. Close it (or use it as a context manager) once the snapshot built
    from it has been written."""

    complete: bool
    key_column: str
    schema: Mapping[str, pl.DataType]
    pages: int = 0
    high_water: str = ""
    fetched: int = 0
    hashes: list[pl.DataFrame] = field(default_factory=list)
    quarantined: list[tuple[str, str, str]] = field(default_factory=list)
    rejected_keys: list[pl.Series] = field(default_factory=list)
    repeated_keys: bool = False  # known once the hashes are taken; until then records() keeps every copy
    spool: Spool = field(init=False)

    def __post_init__(self) -> None:
        # Each record's payload is spooled beside it: rendered once, for its hash, and stored as rendered.
        self.spool = Spool({**self.schema, PAYLOAD: pl.String()}, self.key_column)

    def __enter__(self) -> IngestBatch:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.spool.close()

    def add_frame(self, records: pl.DataFrame) -> None:
        records = records.select([pl.col(n).cast(t) for n, t in self.schema.items()])
        payloads = render_payloads(records)
        digests = [hashlib.sha256(p.encode()).hexdigest() for p in payloads]
        keys = records.select(key_text(self.key_column)).to_series()
        self.hashes.append(pl.DataFrame({"record_key": keys, "content_hash": digests}))
        self.spool.add(records.with_columns(payloads.alias(PAYLOAD)))
        self.fetched += records.height

    def add_records(self, records: Sequence[Mapping[str, Any]]) -> None:
        if records:
            self.add_frame(pl.DataFrame(list(records), schema=dict(self.schema)))

    def reject(self, key: str, reasons: Iterable[str], raw: Mapping[str, Any]) -> None:
        payload = json.dumps(raw, sort_keys=True, default=str)
        self.quarantined.extend((key, reason, payload) for reason in reasons)
        self.rejected_keys.append(pl.Series([key], dtype=pl.String))
        self.fetched += 1

    def reject_frame(self, rejected: pl.DataFrame) -> None:
        """Rejected rows as columns: record_key, reason, payload."""
        self.quarantined.extend(rejected.select("record_key", "reason", "payload").iter_rows())
        keys = rejected["record_key"].unique()
        self.rejected_keys.append(keys)
        self.fetched += keys.len()

    def take_hashes(self) -> pl.DataFrame:
        """(record_key, content_hash) of every good record fetched, handed over once: the batch keeps no
        copy, only whether some key came twice."""
        empty = pl.DataFrame(schema={"record_key": pl.String, "content_hash": pl.String})
        hashes = pl.concat([empty, *self.hashes])
        self.hashes.clear()
        self.repeated_keys = bool(hashes["record_key"].is_duplicated().any())
        return hashes

    def records(self) -> pl.LazyFrame:
        """The good records, read from the spool; where a key came twice, only its last copy."""
        if not self.repeated_keys:
            return self.spool.scan().select(list(self.schema))
        return (
            self.spool.scan(with_order=True)
            .sort(SEQ)
            .unique(subset=self.key_column, keep="last", maintain_order=True)
            .select(list(self.schema))
        )

    def payloads_for(self, to_open: pl.DataFrame) -> Iterator[pl.DataFrame]:
        """(record_key, content_hash, payload, isbn13, work_id) of the rows to open (given in key order), a
        block at a time, one key range of the spool in memory at a time. isbn13 and work_id, the record's
        subject, are text (null where the schema has no such field)."""
        prefixes = to_open["record_key"].str.slice(0, 1)
        named = [c for c in SUBJECT_COLUMNS if c in self.schema and c != self.key_column]
        subject = [
            (pl.col(c) if c in self.schema else pl.lit(None)).cast(pl.String).alias(c)
            for c in SUBJECT_COLUMNS
        ]
        for prefix in prefixes.unique(maintain_order=True).to_list():
            wanted = to_open.filter(prefixes == prefix).select("record_key", "content_hash")
            rows = self.spool.key_range(prefix, [PAYLOAD, *named]).select(
                key_text(self.key_column).alias("record_key"), pl.col(PAYLOAD).alias("payload"), *subject
            )
            joined = wanted.join(rows, on="record_key", how="inner", maintain_order="left")
            yield from joined.iter_slices(20_000)

    def seen_keys(self, good_keys: pl.Series) -> list[str]:
        """These good keys and every rejected one: the records this batch re-examined."""
        return pl.concat([good_keys, *self.rejected_keys]).to_list()

    @property
    def quarantined_keys(self) -> list[str]:
        return sorted({q[0] for q in self.quarantined})


def snapshot_cursor(entity: str) -> str:
    return f"snapshot.{entity}.run_id"


def commit_batch(
    store: LineageStore,
    *,
    entity: str,
    source: str,
    batch: IngestBatch,
    observed_at: datetime,
    run_id: str | None,
    cursors: Mapping[str, str],
    full_at_cursor: str,
) -> SnapshotDiff:
    """History, quarantine and cursors in one transaction. A complete batch is a full reconciliation:
    `full_at_cursor` then records when it happened."""
    hashes = batch.take_hashes()
    checked = () if batch.complete else batch.seen_keys(hashes["record_key"])
    with store.checkpoints.transaction() as conn:  # the caller waits for the WAL's copy at its end
        diff = store.history.apply_snapshot(
            conn,
            entity,
            hashes,
            observed_at=observed_at,
            complete=batch.complete,
            run_id=run_id,
            keep_open=batch.quarantined_keys,
            payloads=batch.payloads_for,
            subjects_in_payload=True,
        )
        store.quarantine.hold(
            conn,
            source,
            batch.quarantined,
            run_id=run_id,
            complete=batch.complete,
            checked_keys=checked,
        )
        if batch.complete:
            cursors = {**cursors, full_at_cursor: observed_at.isoformat()}
        for name, value in cursors.items():
            store.cursors.set(conn, name, value, run_id)
        if run_id:
            store.cursors.set(conn, snapshot_cursor(entity), run_id, run_id)
    return diff


def _decode(payloads: list[str], schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    struct = pl.Struct([pl.Field(name, dtype) for name, dtype in schema.items()])
    if not payloads:
        return pl.DataFrame(schema=dict(schema))
    return (
        pl.DataFrame({"payload": payloads}, schema={"payload": pl.String})
        .select(pl.col("payload").str.json_decode(struct).alias("record"))
        .unnest("record")
    )


def payload_frame(store: LineageStore, entity: str, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """The current record of every open key, decoded into typed columns chunk by chunk (bounded memory)."""
    frames = [_decode(chunk, schema) for chunk in store.history.iter_open_payloads(entity)]
    return pl.concat([pl.DataFrame(schema=dict(schema)), *frames])


def current_snapshot(
    store: LineageStore,
    batch: IngestBatch,
    diff: SnapshotDiff,
    previous: pl.LazyFrame | None,
    entity: str,
) -> pl.LazyFrame:
    """The open records after this commit, as a plan over the spool (and the previous snapshot's file),
    without reading the whole history back:
    - a complete batch is the population, plus quarantined records whose last good version stays open;
    - otherwise the previous snapshot with this batch's changes applied;
    - with no trustworthy previous snapshot, everything decoded from the store (the slow, safe path)."""
    if batch.complete:
        held = _decode(
            list(store.history.open_payload_map(entity, batch.quarantined_keys).values()), batch.schema
        )
        return pl.concat([batch.records(), held.lazy()])
    if previous is None:
        return payload_frame(store, entity, batch.schema).lazy()
    key = key_text(batch.key_column)
    touched = pl.Series([*diff.added, *diff.changed, *diff.removed], dtype=pl.String).implode()
    fresh_keys = pl.Series([*diff.added, *diff.changed], dtype=pl.String).implode()
    kept = previous.select([pl.col(n).cast(t) for n, t in batch.schema.items()]).filter(~key.is_in(touched))
    fresh = batch.records().filter(key.is_in(fresh_keys))
    return pl.concat([kept, fresh])
