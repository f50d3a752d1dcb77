"""dam_asset_inventory: every DAM asset version with role, tags, approval state and license window."""

import json
from collections.abc import Iterator
from datetime import timedelta

import dagster as dg
import polars as pl

from consodam_pipeline.clients.opentext_dam import OpenTextDamResource, modified_after
from consodam_pipeline.defs.dam.records import (
    COLUMN_DOCS,
    ENTITY,
    ORPHAN_SOURCE,
    SOURCE,
    VERSION_SCHEMA,
    normalize_versions,
    typed_inventory,
)
from consodam_pipeline.defs.editions import all_periods, change_events, periods_for_works
from consodam_pipeline.defs.ingest import (
    IngestConfig,
    ingest_metadata,
    open_quarantined,
    previous_snapshot,
    reconciliation_due,
    snapshot_outdated,
    utcnow,
)
from consodam_pipeline.domain.timestamps import format_ts, parse_ts
from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.store.tables import PolarsParquetIOManager
from consodam_pipeline.sync.snapshot import IngestBatch, commit_batch, current_snapshot

MODIFIED_CURSOR = "dam.assets.modified_after"
FULL_AT_CURSOR = "dam.assets.full_reconciliation_at"


def flag_orphans(
    store: LineageStore, versions: pl.LazyFrame, editions: pl.DataFrame, run_id: str
) -> tuple[pl.LazyFrame, int]:
    """Versions tagged with an ISBN or work that no edition has: flagged, and quarantined until it exists."""
    known_isbns = editions["isbn13"].unique().implode()
    known_works = editions["work_id"].unique().implode()
    orphan = (pl.col("isbn13").is_not_null() & ~pl.col("isbn13").is_in(known_isbns)) | (
        pl.col("work_id").is_not_null() & ~pl.col("work_id").is_in(known_works)
    )
    flagged = versions.with_columns(orphan.alias("orphan_tag"))
    orphans = flagged.filter(pl.col("orphan_tag")).select("asset_id", "isbn13", "work_id").collect()
    rows = [
        (
            r["asset_id"],
            f"orphan_tag: tagged ISBN {r['isbn13']} / work {r['work_id']} matches no edition",
            json.dumps({"asset_id": r["asset_id"], "isbn13": r["isbn13"], "work_id": r["work_id"]}),
        )
        for r in orphans.iter_rows(named=True)
    ]
    with store.engine.begin() as conn:
        store.quarantine_records(conn, ORPHAN_SOURCE, rows, run_id=run_id, complete=True)
    return flagged, orphans.height


def inventory_figures(frame: pl.LazyFrame) -> dict[str, int]:
    """What the materialization reports, in one streaming pass over the snapshot."""
    figures = frame.select(
        pl.len().alias("rows"),
        pl.col("original_asset_id").n_unique().alias("assets"),
        (pl.col("approval_status") == "approved").sum().alias("approved_versions"),
    ).collect(engine="streaming")
    return {name: int(value) for name, value in figures.row(0, named=True).items()}


@dg.asset(
    group_name="ingest",
    kinds={"opentext", "polars"},
    pool="dam_api",
    description="Every DAM asset version (OTMM v6 shape) with role, ISBN/work tags, approval state and history, "
    "license window; incremental by modified-since with a lookback window. Versions tagged with an ISBN or "
    "work no edition has are flagged orphan_tag (and quarantined).",
)
def dam_asset_inventory(
    context: dg.AssetExecutionContext,
    config: IngestConfig,
    dam: OpenTextDamResource,
    lineage: LineageStoreResource,
    io_manager: dg.ResourceParam[PolarsParquetIOManager],
    title_metadata_snapshot: pl.DataFrame,
) -> Iterator[dg.AssetMaterialization | dg.Output[pl.LazyFrame]]:
    started = utcnow()
    store = lineage.store()
    previous = previous_snapshot(context, io_manager, store, ENTITY)
    high_water = store.get_cursor(MODIFIED_CURSOR)
    outdated = snapshot_outdated(previous, VERSION_SCHEMA)
    full = (
        high_water is None
        or outdated
        or reconciliation_due(config, store.get_cursor(FULL_AT_CURSOR), started)
    )
    previous = None if outdated else previous
    since = None
    if not full and high_water is not None:
        since = format_ts(parse_ts(high_water) - timedelta(seconds=config.lookback_seconds))
    # The IO manager writes the snapshot from the batch's spool, so the batch closes after the output.
    with IngestBatch(complete=full, key_column="asset_id", schema=VERSION_SCHEMA) as batch:
        requests, retries = fetch_versions(dam, batch, since)
        new_high = max(high_water or "", batch.high_water)
        diff = commit_batch(
            store,
            entity=ENTITY,
            source=SOURCE,
            batch=batch,
            observed_at=started,
            run_id=context.run.run_id,
            cursors={MODIFIED_CURSOR: new_high} if new_high else {},
            full_at_cursor=FULL_AT_CURSOR,
        )
        versions = typed_inventory(current_snapshot(store, batch, diff, previous, ENTITY))
        frame, orphan_count = flag_orphans(store, versions, title_metadata_snapshot, context.run.run_id)
        periods = changed_periods(frame, previous, title_metadata_snapshot)
        figures = inventory_figures(frame)
        yield dg.Output(
            frame,
            metadata=ingest_metadata(
                title="DAM asset inventory",
                rows=figures["rows"],
                schema=frame.collect_schema(),
                diff=diff,
                batch=batch,
                window="everything" if since is None else f"modified after {since}",
                requests=requests,
                retries=retries,
                column_docs=COLUMN_DOCS,
                quarantined_open=open_quarantined(store, SOURCE, ORPHAN_SOURCE),
                extra={
                    "orphan_tagged_versions": orphan_count,
                    "high_water_mark": new_high or "—",
                    "assets": figures["assets"],
                    "approved_versions": figures["approved_versions"],
                    "snapshot_built_from": "store" if previous is None else "previous snapshot + changes",
                    "periods_touched": len(periods),
                },
            ),
        )
        yield from change_events(periods, "dam")  # only once the snapshot is stored


def fetch_versions(dam: OpenTextDamResource, batch: IngestBatch, since: str | None) -> tuple[int, int]:
    """Every version (since=None) or those modified after `since` into the batch: (requests, retries)."""
    with dam.client() as client:
        if since is None:
            pages = client.iter_asset_frames(all_versions=True)
        else:
            pages = client.search_frames([modified_after(since)], all_versions=True)
        for page in pages:
            good, rejected = normalize_versions(page)
            batch.add_frame(good)
            batch.reject_frame(rejected)
            batch.pages += 1
            batch.high_water = max(batch.high_water, str(page["date_last_updated"].max() or ""))
        return client.http.requests, client.http.retries


# What the edition-level assets read from a version; our own writes (tags, restrictions, policies) are not in
# it, so the DAM changes consodam itself makes do not send the edition graph round again.
RELEVANT = ["asset_id", "original_asset_id", "version", "role", "isbn13", "work_id", "approval_status",
            "approved_at", "license_from", "license_until", "orphan_tag", "mime_type", "width_px", "height_px",
            "colour_space", "page_count", "duration_s"]  # fmt: skip


def changed_periods(now: pl.LazyFrame, before: pl.LazyFrame | None, editions: pl.DataFrame) -> list[str]:
    """Periods of the works whose versions changed in what the edition-level assets read. Rows are
    compared by a hash of their RELEVANT columns, so neither snapshot is held whole in memory."""
    if before is None:
        return all_periods(editions)
    now_rows, before_rows = _relevant_rows(now), _relevant_rows(before)
    moved = pl.concat(
        [now_rows.join(before_rows, on="row", how="anti"), before_rows.join(now_rows, on="row", how="anti")]
    ).collect(engine="streaming")
    works = moved["work_id"].drop_nulls().unique().to_list()
    isbns = moved["isbn13"].drop_nulls().unique().implode()
    works += editions.filter(pl.col("isbn13").is_in(isbns))["work_id"].to_list()
    return periods_for_works(editions, sorted(set(works)))


def _relevant_rows(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.select("work_id", "isbn13", pl.struct(RELEVANT).hash(seed=0).alias("row"))
