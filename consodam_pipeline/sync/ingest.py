"""The read engine, twin of the write engine: one routine every ingest asset runs.

An `IngestSource` declares what it reads (entity, key, schema, cursors) and how: the window since the last
high-water mark, the fetch, the typed snapshot, and which publication periods a change touched. `ingest`
does the rest, in this order:
1. full or incremental: full when the source was never read, when the last snapshot lacks fields this code
   reads, or when the last full reconciliation is older than `reconcile_every_hours`;
2. fetch into a spool on disk (only keys and content hashes stay in memory);
3. commit: history rows, quarantine and cursors in one transaction (a crash repeats work, never skips it);
4. the snapshot: the previous one with this run's changes applied (when it is exactly what the store
   committed last), else rebuilt from the store;
5. the output, then a period marker for each period a change touched (only once the snapshot is stored,
   so automation never runs the edition graph on the previous one; in a run of both systems, once, by the
   last ingest step: sync/markers.py); consodam's own writes coming back (echoes) touch none.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

import dagster as dg
import polars as pl
from pydantic import BaseModel

from consodam_pipeline.domain.timestamps import utcnow
from consodam_pipeline.store.history import SnapshotDiff
from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.store.tables import PolarsParquetIOManager, exists, scan_parquet
from consodam_pipeline.sync import markers
from consodam_pipeline.sync.report import (
    column_schema,
    diff_metadata,
    quarantine_counts,
    sample,
    summary_markdown,
)
from consodam_pipeline.sync.snapshot import IngestBatch, commit_batch, current_snapshot, snapshot_cursor

Item = TypeVar("Item", bound=BaseModel)


class IngestConfig(dg.Config):
    full_refresh: bool = False
    """Fetch everything and close records that vanished at the source (deletions)."""
    lookback_days: int = 1
    """Consonance's changedSince is date-granular and only 'likely': re-read this many extra days."""
    lookback_seconds: int = 120
    """DAM modified-since window re-read before the high-water mark."""
    reconcile_every_hours: float = 24.0
    """An incremental run turns into a full reconciliation when the last one is older than this."""


class IngestSource(ABC):
    """What one ingest reads, and how."""

    name: str  # the system, as period markers and quarantine name it
    title: str  # what the materialization is called in its summary
    entity: str  # history entity of its records
    key_column: str
    schema: Mapping[str, pl.DataType]
    column_docs: Mapping[str, str]
    high_water_cursor: str  # how far the last run read
    full_at_cursor: str  # when the last full reconciliation happened
    quarantine_sources: tuple[str, ...]
    # The later step of the same run that records this source's period markers with its own (sync/markers.py)
    markers_recorded_by: str | None = None

    @abstractmethod
    def since(self, high_water: str, config: IngestConfig) -> Any:
        """Where an incremental run starts reading, from the last high-water mark."""

    @abstractmethod
    def fetch(self, batch: IngestBatch, since: Any) -> tuple[int, int]:
        """Everything (since=None) or what changed since into the batch: (requests, retries)."""

    @abstractmethod
    def high_water(self, started: datetime, batch: IngestBatch, last: str | None) -> str | None:
        """The high-water mark this run reached."""

    @abstractmethod
    def window(self, since: Any) -> str:
        """The window read, as a person reads it."""

    @abstractmethod
    def snapshot(
        self, store: LineageStore, frame: pl.LazyFrame, run_id: str, observed_at: datetime
    ) -> tuple[Any, dict[str, Any]]:
        """The typed snapshot to store (a frame or a plan), and figures about it for the metadata (`rows`
        at least)."""

    @abstractmethod
    def changed_periods(
        self, store: LineageStore, diff: SnapshotDiff, now: Any, before: pl.LazyFrame | None
    ) -> list[str]:
        """The publication periods this run's changes touched (every one, with no previous snapshot)."""

    def check_results(self, store: LineageStore, stored: pl.LazyFrame) -> list[dg.AssetCheckResult]:
        """The asset's checks, on the snapshot as stored."""
        return []


def reconciliation_due(config: IngestConfig, last_full: str | None, now: datetime) -> bool:
    if config.full_refresh or last_full is None:
        return True
    return now - datetime.fromisoformat(last_full) > timedelta(hours=config.reconcile_every_hours)


def ingest(
    context: dg.AssetExecutionContext,
    source: IngestSource,
    store: LineageStore,
    io_manager: PolarsParquetIOManager,
    config: IngestConfig,
) -> Iterator[dg.AssetMaterialization | dg.Output[Any] | dg.AssetCheckResult]:
    # One ingest of a source at a time: a second (an operator's beside the sensor's) reads after it.
    with store.locks.holding([f"ingest:{source.entity}"], say=context.log.info):
        yield from _ingest(context, source, store, io_manager, config)


def _ingest(
    context: dg.AssetExecutionContext,
    source: IngestSource,
    store: LineageStore,
    io_manager: PolarsParquetIOManager,
    config: IngestConfig,
) -> Iterator[dg.AssetMaterialization | dg.Output[Any] | dg.AssetCheckResult]:
    started, run_id = utcnow(), context.run.run_id
    previous = previous_snapshot(context, io_manager, store, source.entity)
    high_water = store.cursors.get(source.high_water_cursor)
    outdated = snapshot_outdated(previous, source.schema)
    last_full = store.cursors.get(source.full_at_cursor)
    full = high_water is None or outdated or reconciliation_due(config, last_full, started)
    previous = None if outdated else previous
    since = None if full or high_water is None else source.since(high_water, config)
    batch = IngestBatch(complete=full, key_column=source.key_column, schema=source.schema)
    with batch, store.checkpoints:  # the WAL's copy after the commit runs beside the rest of the step
        requests, retries = source.fetch(batch, since)
        reached = source.high_water(started, batch, high_water)
        cursors = {source.high_water_cursor: reached} if reached else {}
        diff = commit_batch(
            store,
            entity=source.entity,
            source=source.name,
            batch=batch,
            observed_at=started,
            run_id=run_id,
            cursors=cursors,
            full_at_cursor=source.full_at_cursor,
        )
        snapshot = current_snapshot(store, batch, diff, previous, source.entity)
        frame, figures = source.snapshot(store, snapshot, run_id, started)
        periods = source.changed_periods(store, diff, frame, previous)
        context.log.info(
            f"{source.entity}: +{len(diff.added)} ~{len(diff.changed)} -{len(diff.removed)}, "
            f"{len(batch.quarantined_keys)} quarantined, {len(periods)} period(s) touched"
        )
        built_from = "store" if previous is None else "previous snapshot + changes"
        extra = {**figures, "snapshot_built_from": built_from, "periods_touched": len(periods)}
        metadata = ingest_metadata(source, frame, diff, batch, since, (requests, retries), store, extra)
        yield dg.Output(frame, metadata=metadata)
        # Markers only once the snapshot is stored; in a run of both systems, once at the end of the last.
        if markers.recorded_later(context, source.markers_recorded_by):
            markers.leave(store, source.name, periods, run_id)
        else:
            yield from markers.record(store, source.name, periods)
        yield from source.check_results(store, scan_parquet(io_manager.path_for(context.asset_key)))


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
    committed = store.cursors.get(snapshot_cursor(entity))
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
    source: IngestSource,
    frame: Any,
    diff: SnapshotDiff,
    batch: IngestBatch,
    since: Any,
    calls: tuple[int, int],
    store: LineageStore,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    """What the materialization tells a person: counts, schema, what changed, quarantine, the window."""
    rows = extra["rows"]
    by_kind = quarantine_counts([q[1] for q in batch.quarantined])
    mode = "full reconciliation" if batch.complete else "incremental"
    window = "everything" if since is None else source.window(since)
    requests, retries = calls
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
    schema = frame.schema if isinstance(frame, pl.DataFrame) else frame.collect_schema()
    return {
        "dagster/row_count": rows,
        "dagster/column_schema": column_schema(schema, source.column_docs),
        **diff_metadata(diff),
        "quarantined": len(batch.quarantined_keys),
        "quarantined_open": open_quarantined(store, *source.quarantine_sources),
        "quarantined_by_kind": by_kind,
        "mode": mode,
        "window": window,
        "pages": batch.pages,
        "http_requests": requests,
        "http_retries": retries,
        **{k: v for k, v in extra.items() if k != "rows"},
        "summary": summary_markdown(source.title, summary, notes),
    }


def open_quarantined(store: LineageStore, *sources: str) -> int:
    """Distinct records currently held back for these sources (every reason counted once per record)."""
    rows = store.quarantine.open()
    return int(rows.filter(pl.col("source").is_in(list(sources)))["record_key"].n_unique())
