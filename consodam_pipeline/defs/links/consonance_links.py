"""consonance_asset_links (F1, F8 write): each live link as a supporting resource on its Consonance edition."""

import dagster as dg
import polars as pl

from consodam_pipeline.clients.consonance import ConsonanceResource
from consodam_pipeline.clients.opentext_dam import OpenTextDamResource
from consodam_pipeline.derived.links import link_writes
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.sync.write_asset import write, write_asset


@write_asset(
    "consonance_asset_links",
    group="links",
    writes_to="consonance",
    description="Each live link as a supporting resource on its Consonance edition (imageRemoteUrl = the DAM "
    "version's content URL). A newer approved version replaces the resource; a link no longer live is "
    "removed with the reason. Converges every run: duplicates and hand edits are fixed and reported.",
)
def consonance_asset_links(  # type: ignore[no-untyped-def]  # an annotation would be read as the output's type
    context: dg.AssetExecutionContext,
    approved_version_links: pl.DataFrame,
    title_metadata_snapshot: pl.DataFrame,
    dam_asset_inventory: pl.DataFrame,
    consonance: ConsonanceResource,
    dam: OpenTextDamResource,
    lineage: LineageStoreResource,
):
    target, desired = link_writes(
        approved_version_links,
        title_metadata_snapshot,
        dam_asset_inventory,
        list(context.partition_keys),
        dam.url,
    )
    with consonance.client() as client:
        return write(context, target, client, lineage.store(), desired, title="Consonance asset links")
