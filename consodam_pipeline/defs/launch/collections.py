"""launch_collections (F6 write): as publication nears, each launching edition's title sheet and its approved,
rights-cleared versions in the DAM launch collection of its month and imprint, kept true every run."""

from datetime import UTC, datetime

import dagster as dg
import polars as pl

from consodam_pipeline.clients.opentext_dam import OpenTextDamResource
from consodam_pipeline.derived.launch import flag_incomplete, launch_figures, plan_launch
from consodam_pipeline.derived.rules import rules_in_force
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.sync.write_asset import materialized, run_target, write_asset


@write_asset(
    "launch_collections",
    group="launch",
    writes_to="dam",
    after=["approved_version_links", "rights_matrix", "title_asset_packages"],
    description="For each edition in the launch window (90 days before publication to 30 after, not cancelled or "
    "withdrawn): its ONIX 3.0 title sheet and its approved, rights-cleared linked versions in the DAM collection "
    "`Launch <month> · <imprint>`; kept true as links, rights, dates and statuses change.",
)
def launch_collections(  # type: ignore[no-untyped-def]  # an annotation would be read as the output's type
    context: dg.AssetExecutionContext,
    title_metadata_snapshot: pl.DataFrame,
    approved_version_links: pl.DataFrame,
    rights_matrix: pl.DataFrame,
    title_asset_packages: pl.DataFrame,
    dam_asset_inventory: pl.LazyFrame,
    dam: OpenTextDamResource,
    lineage: LineageStoreResource,
):
    store, today = lineage.store(), datetime.now(UTC).date()
    inputs = (title_metadata_snapshot, approved_version_links, rights_matrix, title_asset_packages)
    launch = plan_launch(
        *inputs, dam_asset_inventory, context.partition_keys, rules_in_force().launch, today, dam.url
    )
    with dam.client() as client:
        sheets, _ = run_target(context, launch.sheets, client, store, launch.sheets_desired)
        members = launch.members(client)
        desired = members.desired()
        result, slots = run_target(context, members, client, store, desired)
    figures = launch_figures(
        launch, sheets, desired, flag_incomplete(store, launch.plan, context.run.run_id), store
    )
    return materialized(
        context,
        "Launch collections",
        members,
        result,
        store,
        slots,
        extra=figures,
        earlier={"title_sheets": sheets},
    )
