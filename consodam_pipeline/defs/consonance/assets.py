"""title_metadata_snapshot: every edition's current record from Consonance, fetched incrementally."""

from collections.abc import Collection, Iterator
from datetime import date, timedelta

import dagster as dg
import polars as pl

from consodam_pipeline.clients.consonance import ConsonanceResource
from consodam_pipeline.defs.consonance.records import (
    COLUMN_DOCS,
    EDITION_SCHEMA,
    ENTITY,
    SOURCE,
    edition_record,
    typed_editions,
)
from consodam_pipeline.defs.editions import all_periods, change_events, periods_for_works
from consodam_pipeline.defs.ingest import (
    IngestConfig,
    collect,
    ingest_metadata,
    open_quarantined,
    previous_snapshot,
    reconciliation_due,
    snapshot_outdated,
    utcnow,
)
from consodam_pipeline.store.lineage import LineageStore, SnapshotDiff
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.store.tables import PolarsParquetIOManager
from consodam_pipeline.sync.snapshot import IngestBatch, commit_batch, current_snapshot

CHANGED_SINCE_CURSOR = "consonance.products.changed_since"
FULL_AT_CURSOR = "consonance.products.full_reconciliation_at"


@dg.asset(
    group_name="ingest",
    kinds={"consonance", "polars"},
    pool="consonance_api",
    description="Every edition's current record from Consonance (GraphQL), incremental with a lookback "
    "window; history in the lineage store, bad records in quarantine.",
)
def title_metadata_snapshot(
    context: dg.AssetExecutionContext,
    config: IngestConfig,
    consonance: ConsonanceResource,
    lineage: LineageStoreResource,
    io_manager: dg.ResourceParam[PolarsParquetIOManager],
) -> Iterator[dg.AssetMaterialization | dg.Output[pl.DataFrame]]:
    started = utcnow()
    store = lineage.store()
    previous = previous_snapshot(context, io_manager, store, ENTITY)
    last_day = store.get_cursor(CHANGED_SINCE_CURSOR)
    outdated = snapshot_outdated(previous, EDITION_SCHEMA)
    full = (
        last_day is None or outdated or reconciliation_due(config, store.get_cursor(FULL_AT_CURSOR), started)
    )
    previous = None if outdated else previous
    since = (
        None
        if full or last_day is None
        else date.fromisoformat(last_day) - timedelta(days=config.lookback_days)
    )
    with IngestBatch(complete=full, key_column="product_id", schema=EDITION_SCHEMA) as batch:
        with consonance.client() as client:
            collect(
                client.iter_product_pages(changed_since=since), batch, edition_record, lambda p: str(p.id)
            )
            requests, retries = client.http.requests, client.http.retries
        diff = commit_batch(
            store,
            entity=ENTITY,
            source=SOURCE,
            batch=batch,
            observed_at=started,
            run_id=context.run.run_id,
            cursors={CHANGED_SINCE_CURSOR: started.date().isoformat()},
            full_at_cursor=FULL_AT_CURSOR,
        )
        frame = typed_editions(current_snapshot(store, batch, diff, previous, ENTITY).collect())
    context.log.info(
        f"editions: +{len(diff.added)} ~{len(diff.changed)} -{len(diff.removed)}, "
        f"{len(batch.quarantined_keys)} quarantined"
    )
    periods = changed_periods(diff, frame, previous, echoes(store, diff, frame, previous))
    yield dg.Output(
        frame,
        metadata=ingest_metadata(
            title="Title metadata snapshot",
            rows=frame.height,
            schema=frame.schema,
            diff=diff,
            batch=batch,
            window="everything" if since is None else f"changedSince {since.isoformat()}",
            requests=requests,
            retries=retries,
            column_docs=COLUMN_DOCS,
            quarantined_open=open_quarantined(store, SOURCE),
            extra={
                "snapshot_built_from": "store" if previous is None else "previous snapshot + changes",
                "periods_touched": len(periods),
            },
        ),
    )
    yield from change_events(periods, "consonance")  # only once the snapshot is stored


def echoes(
    store: LineageStore, diff: SnapshotDiff, now: pl.DataFrame, before: pl.LazyFrame | None
) -> set[str]:
    """Changed editions whose only differences are fields consodam's own last write set, with the values it
    set (a stage it advanced): consodam's write coming back, not a change to act on."""
    written = store.journal_fields("consonance", diff.changed)
    if not written or before is None:
        return set()
    ids = pl.Series([int(k) for k in written], dtype=pl.Int64).implode()
    old = {
        r["product_id"]: r
        for r in before.filter(pl.col("product_id").is_in(ids)).collect().iter_rows(named=True)
    }
    echoed = set()
    for row in now.filter(pl.col("product_id").is_in(ids)).iter_rows(named=True):
        previous, fields = old.get(row["product_id"]), written[str(row["product_id"])]
        if previous is None:
            continue
        differing = {c for c in row if c in previous and row[c] != previous[c]}
        if differing and all(c in fields and row[c] == fields[c] for c in differing):
            echoed.add(str(row["product_id"]))
    return echoed


def changed_periods(
    diff: SnapshotDiff,
    now: pl.DataFrame,
    before: pl.LazyFrame | None,
    ours: Collection[str] = (),
) -> list[str]:
    """Periods of the works whose editions changed, before and after (a moved date touches both); changes
    that are consodam's own writes coming back (`ours`) touch none."""
    if before is None:
        return all_periods(now)
    keys = (
        pl.Series([k for k in (*diff.added, *diff.changed, *diff.removed) if k not in ours])
        .cast(pl.Int64)
        .implode()
    )
    works = set(now.filter(pl.col("product_id").is_in(keys))["work_id"].to_list())
    works |= set(before.filter(pl.col("product_id").is_in(keys)).collect()["work_id"].to_list())
    earlier = before.filter(pl.col("work_id").is_in(pl.Series(sorted(works), dtype=pl.Int64).implode()))
    periods = set(periods_for_works(now, sorted(works)))
    periods |= set(
        periods_for_works(
            earlier.with_columns(pl.col("publication_date").cast(pl.Date)).collect(), sorted(works)
        )
    )
    return sorted(periods)
