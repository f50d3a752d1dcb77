"""launch_collections (F6 write): as publication nears, each launching edition's title sheet and its approved,
rights-cleared versions in the DAM launch collection of its month and imprint, kept true every run."""

import dagster as dg
import polars as pl

from consodam_pipeline.clients.opentext_dam import OpenTextDamResource
from consodam_pipeline.derived.launch import plan_launch, publish
from consodam_pipeline.derived.rules import rules_in_force
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.sync.write_asset import materialized, write_asset


@write_asset(
    "launch_collections",
    group="launch",
    writes_to="dam",
    description="For each edition in the launch window (90 days before publication to 30 after, not cancelled or "
    "withdrawn): its ONIX 3.0 title sheet and its approved, rights-cleared linked versions in the DAM collection "
    "`Launch <month> · <imprint>`; kept true as links, rights, dates and statuses change.",
)
def launch_collections(  # type: ignore[no-untyped-def]  # an annotation would be read as the output's type
    context: dg.AssetExecutionContext,
    title_metadata_snapshot: pl.DataFrame,
    approved_version_links: pl.DataFrame,
    rights_matrix: pl.LazyFrame,
    title_asset_packages: pl.LazyFrame,
    dam_asset_inventory: pl.LazyFrame,
    dam: OpenTextDamResource,
    lineage: LineageStoreResource,
):
    store = lineage.store()
    inputs = (title_metadata_snapshot, approved_version_links, rights_matrix, title_asset_packages)
    launch = plan_launch(
        *inputs, dam_asset_inventory, context.partition_keys, rules_in_force().launch, dam.url
    )
    with dam.client() as client:
        published = publish(context, launch, client, store)
    return materialized(
        context,
        "Launch collections",
        published.members,
        published.result,
        store,
        published.slots,
        extra=published.figures,
        earlier={"title_sheets": published.sheets},
    )
