"""dam_usage_log: the DAM's usage log (downloads and deliveries of each version, by whom, through which
channel) ingested incrementally into the lineage store, so the audit answers "when was it used"."""

import dagster as dg
import polars as pl

from consodam_pipeline.clients.opentext_dam import OpenTextDamResource
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.sync.usage_ingest import ingest_usage, usage_metadata


@dg.asset(
    group_name="ingest",
    kinds={"opentext"},
    pool="dam_api",
    deps=["dam_asset_inventory"],
    description="The DAM's usage log (downloads and deliveries of each version, by whom, through which channel), "
    "read incrementally into the lineage store's asset_usage table; the audit answers when each version was used.",
)
def dam_usage_log(
    context: dg.AssetExecutionContext,
    dam: OpenTextDamResource,
    lineage: LineageStoreResource,
    dam_asset_inventory: pl.LazyFrame,
) -> dg.MaterializeResult:
    read = ingest_usage(dam, lineage.store(), dam_asset_inventory, context.run.run_id)
    return dg.MaterializeResult(metadata=usage_metadata(read))
