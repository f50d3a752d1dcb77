"""dam_title_tags (F3 write): title metadata from Consonance written into each DAM asset's metadata."""

import dagster as dg
import polars as pl

from consodam_pipeline.clients.opentext_dam import OpenTextDamResource
from consodam_pipeline.derived.title_tags import tag_writes
from consodam_pipeline.domain.periods import partition_slice
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.sync.partitions import EDITION_CHANGES
from consodam_pipeline.sync.write_asset import write, write_asset


@write_asset(
    "dam_title_tags",
    group="tags",
    writes_to="dam",
    deps=[EDITION_CHANGES],
    description="ISBN, title, contributors, imprint, format, publication date and rights territory written "
    "into each asset's newest version (lock → update → unlock), only where they differ.",
)
def dam_title_tags(  # type: ignore[no-untyped-def]  # an annotation would be read as the output's type
    context: dg.AssetExecutionContext,
    title_metadata_snapshot: pl.DataFrame,
    dam_asset_inventory: pl.DataFrame,
    dam: OpenTextDamResource,
    lineage: LineageStoreResource,
):
    editions, versions = partition_slice(title_metadata_snapshot, dam_asset_inventory, context.partition_keys)
    target, desired = tag_writes(editions, versions, frozenset(dam_asset_inventory["asset_id"].to_list()))
    with dam.client() as client:
        return write(context, target, client, lineage.store(), desired, title="DAM title tags")
