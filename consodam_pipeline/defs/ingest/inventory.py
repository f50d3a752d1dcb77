"""dam_asset_inventory: every DAM asset version with role, tags, approval state and license window."""

from collections.abc import Iterator
from typing import Any

import dagster as dg
import polars as pl

from consodam_pipeline.clients.opentext_dam import OpenTextDamResource
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.store.tables import PolarsParquetIOManager
from consodam_pipeline.sync.dam_ingest import InventorySource
from consodam_pipeline.sync.ingest import IngestConfig, ingest
from consodam_pipeline.sync.ingest_checks import INVENTORY_CHECKS


@dg.asset(
    group_name="ingest",
    kinds={"opentext", "polars"},
    pool="dam_api",
    check_specs=INVENTORY_CHECKS,
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
) -> Iterator[Any]:
    source = InventorySource(dam, title_metadata_snapshot)
    yield from ingest(context, source, lineage.store(), io_manager, config)
