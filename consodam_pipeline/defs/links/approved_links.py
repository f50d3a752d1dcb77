"""approved_version_links (F1, F8, F7 history): edition × role → the approved DAM version linked to it."""

import dagster as dg
import polars as pl

from consodam_pipeline.derived.links import (
    LINK_CHECKS,
    LINK_EDITION_INPUTS,
    LINK_INPUTS,
    link_checks,
    link_metadata,
    record_links,
)
from consodam_pipeline.domain.periods import partition_slice
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.sync.partitions import EDITION_CHANGES, by_period, period_asset


@period_asset(
    name="approved_version_links",
    **by_period(),
    deps=[EDITION_CHANGES],
    check_specs=LINK_CHECKS,
    group_name="links",
    kinds={"polars"},
    description="Edition × role → the approved DAM asset version linked to it (rules: domain/links.py). "
    "Also rebuilds the link and approval history from the DAM's approval records into the audit ledger, so "
    "a backfill of every period gives an onboarding publisher its past audit trail. Replays add nothing.",
)
def approved_version_links(  # type: ignore[no-untyped-def]  # an annotation would be read as the output's type
    context: dg.AssetExecutionContext,
    title_metadata_snapshot: pl.LazyFrame,
    dam_asset_inventory: pl.LazyFrame,
    lineage: LineageStoreResource,
):
    keys, store = list(context.partition_keys), lineage.store()
    editions, versions = partition_slice(
        title_metadata_snapshot.select(LINK_EDITION_INPUTS).collect(),
        dam_asset_inventory.select(LINK_INPUTS),
        keys,
    )
    every_version = dam_asset_inventory.select("asset_id").collect()["asset_id"]
    run = record_links(store, editions, versions, every_version, context.run.run_id, keys)
    checks = link_checks(run, versions, store)
    del editions, versions, every_version  # gone before the output's partitions are written
    return dg.MaterializeResult(value=run.links, check_results=checks, metadata=link_metadata(run, keys))
