"""Shared shape of an incremental ingest run: config, the fetch loop, and what it reports."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import dagster as dg
import polars as pl
from pydantic import BaseModel

from consodam_pipeline.store.lineage import LineageStore, SnapshotDiff
from consodam_pipeline.store.tables import PolarsParquetIOManager, exists, scan_parquet
from consodam_pipeline.sync.report import (
    column_schema,
    diff_metadata,
    quarantine_counts,
    sample,
    summary_markdown,
)
from consodam_pipeline.sync.snapshot import IngestBatch, snapshot_cursor

Item = TypeVar("Item", bound=BaseModel)
T = TypeVar("T")


class IngestConfig(dg.Config):
    full_refresh: bool = False
    """Fetch everything and close records that vanished at the source (deletions)."""
    lookback_days: int = 1
    """Consonance's changedSince is date-granular and only 'likely': re-read this many extra days."""
    lookback_seconds: int = 120
    """DAM modified-since window re-read before the high-water mark."""
    reconcile_every_hours: float = 24.0
    """An incremental run turns into a full reconciliation when the last one is older than this."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def reconciliation_due(config: IngestConfig, last_full: str | None, now: datetime) -> bool:
    if config.full_refresh or last_full is None:
        return True
    return now - datetime.fromisoformat(last_full) > timedelta(hours=config.reconcile_every_hours)


def collect(
    pages: Iterable[list[Item]],
    batch: IngestBatch,
    to_record: Callable[[Item], tuple[dict[str, Any] | None, list[str]]],
    key: Callable[[Item], str],
) -> IngestBatch:
    """Per-record normalisation, one typed frame per page."""
    for page in pages:
        batch.pages += 1
        good = []
        for item in page:
            record, reasons = to_record(item)
            if record is None:
                batch.reject(key(item), reasons, item.model_dump(mode="json"))
            else:
                good.append(record)
        batch.add_records(good)
    return batch


def previous_snapshot(
    context: dg.AssetExecutionContext, io_manager: PolarsParquetIOManager, store: LineageStore, entity: str
) -> pl.LazyFrame | None:
    """The last snapshot (a scan of its file), only if it is exactly what the store committed last (same
    run): else None and the caller rebuilds from the store. Checked before this run commits."""
    event = context.instance.get_latest_materialization_event(context.asset_key)
    committed = store.get_cursor(snapshot_cursor(entity))
    path = io_manager.path_for(context.asset_key)
    if event is None or committed is None or event.run_id != committed or not exists(path):
        return None
    return scan_parquet(path)


def snapshot_outdated(previous: pl.LazyFrame | None, schema: Mapping[str, pl.DataType]) -> bool:
    """The last snapshot was written by an earlier consodam whose records lacked fields this one reads:
    only a full reconciliation brings every record (and its history) up to the new fields."""
    if previous is None:
        return False
    held = previous.collect_schema()
    return any(name not in held for name in schema)


def ingest_metadata(
    *,
    title: str,
    rows: int,
    schema: Mapping[str, pl.DataType],
    diff: SnapshotDiff,
    batch: IngestBatch,
    window: str,
    requests: int,
    retries: int,
    column_docs: Mapping[str, str],
    quarantined_open: int,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    by_kind = quarantine_counts([q[1] for q in batch.quarantined])
    mode = "full reconciliation" if batch.complete else "incremental"
    summary = [
        ("mode", mode),
        ("window", window),
        ("records fetched", batch.fetched),
        ("added", len(diff.added)),
        ("changed", len(diff.changed)),
        ("removed", len(diff.removed)),
        ("unchanged", diff.unchanged),
        ("quarantined", len(batch.quarantined_keys)),
        ("rows in snapshot", rows),
        ("requests / retries", f"{requests} / {retries}"),
    ]
    notes = [
        f"added: {sample(diff.added)}",
        f"changed: {sample(diff.changed)}",
        f"removed: {sample(diff.removed)}",
    ]
    notes += [f"quarantined {kind}: {n}" for kind, n in sorted(by_kind.items())]
    return {
        "dagster/row_count": rows,
        "dagster/column_schema": column_schema(schema, column_docs),
        **diff_metadata(diff),
        "quarantined": len(batch.quarantined_keys),
        "quarantined_open": quarantined_open,
        "quarantined_by_kind": by_kind,
        "mode": mode,
        "window": window,
        "pages": batch.pages,
        "http_requests": requests,
        "http_retries": retries,
        **(extra or {}),
        "summary": summary_markdown(title, summary, notes),
    }


def open_quarantined(store: LineageStore, *sources: str) -> int:
    """Distinct records currently held back for these sources (every reason counted once per record)."""
    rows = store.open_quarantine()
    return int(rows.filter(pl.col("source").is_in(list(sources)))["record_key"].n_unique())
