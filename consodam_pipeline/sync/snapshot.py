"""Committing an ingest batch: history rows, quarantine and cursors in one transaction.

A crash before the commit loses nothing (the cursor has not moved, the next run fetches again); a
crash after it repeats nothing (the rows are there and the diff of a replay is empty).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from consodam_pipeline.store.lineage import LineageStore, SnapshotDiff


@dataclass
class IngestBatch:
    """What one ingest fetched: good records, quarantined ones with reasons, and whether it is complete."""

    complete: bool
    keys: list[str] = field(default_factory=list)
    hashes: list[str] = field(default_factory=list)
    payloads: list[str] = field(default_factory=list)
    quarantined: list[tuple[str, str, str]] = field(default_factory=list)
    seen_keys: list[str] = field(default_factory=list)
    pages: int = 0
    high_water: str = ""
    frames: list[pl.DataFrame] = field(default_factory=list)

    def add(self, key: str, record: Mapping[str, Any]) -> None:
        payload = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
        self.keys.append(key)
        self.hashes.append(hashlib.sha256(payload.encode()).hexdigest())
        self.payloads.append(payload)
        self.seen_keys.append(key)

    def reject(self, key: str, reasons: Iterable[str], raw: Mapping[str, Any]) -> None:
        payload = json.dumps(raw, sort_keys=True, default=str)
        self.quarantined.extend((key, reason, payload) for reason in reasons)
        self.seen_keys.append(key)

    def add_frame(self, key_column: str, records: pl.DataFrame) -> None:
        """Good records as columns: payload is the row as JSON (column order), hashed like `add`."""
        payloads = records.select(pl.struct(pl.all()).struct.json_encode()).to_series().to_list()
        hashes = [hashlib.sha256(p.encode()).hexdigest() for p in payloads]
        keys = records[key_column]
        self.frames.append(pl.DataFrame({"record_key": keys, "content_hash": hashes, "payload": payloads}))
        self.seen_keys.extend(keys.to_list())

    def reject_frame(self, rejected: pl.DataFrame) -> None:
        """Rejected rows as columns: record_key, reason, payload."""
        self.quarantined.extend(rejected.select("record_key", "reason", "payload").iter_rows())
        self.seen_keys.extend(rejected["record_key"].unique().to_list())

    def frame(self) -> pl.DataFrame:
        listed = pl.DataFrame(
            {"record_key": self.keys, "content_hash": self.hashes, "payload": self.payloads},
            schema={"record_key": pl.String, "content_hash": pl.String, "payload": pl.String},
        )
        return pl.concat([listed, *self.frames]) if self.frames else listed

    @property
    def quarantined_keys(self) -> list[str]:
        return sorted({q[0] for q in self.quarantined})


def commit_batch(
    store: LineageStore,
    *,
    entity: str,
    source: str,
    batch: IngestBatch,
    observed_at: datetime,
    run_id: str | None,
    cursors: Mapping[str, str],
) -> SnapshotDiff:
    with store.engine.begin() as conn:
        diff = store.apply_snapshot(
            conn,
            entity,
            batch.frame(),
            observed_at=observed_at,
            complete=batch.complete,
            run_id=run_id,
            keep_open=batch.quarantined_keys,
        )
        store.quarantine_records(
            conn,
            source,
            batch.quarantined,
            run_id=run_id,
            complete=batch.complete,
            checked_keys=batch.seen_keys,
        )
        for name, value in cursors.items():
            store.set_cursor(conn, name, value, run_id)
    return diff


def payload_frame(store: LineageStore, entity: str, schema: Mapping[str, pl.DataType]) -> pl.DataFrame:
    """The current record of every open key, decoded into typed columns (vectorised JSON decode)."""
    current = store.current_records(entity)
    struct = pl.Struct([pl.Field(name, dtype) for name, dtype in schema.items()])
    if current.height == 0:
        return pl.DataFrame(schema=dict(schema))
    return current.select(pl.col("payload").str.json_decode(struct).alias("record")).unnest("record")
