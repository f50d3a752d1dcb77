"""title_asset_packages (F5, F2's gate): every edition × requirement of its format."""

import dagster as dg
import polars as pl

from consodam_pipeline.derived.package_report import PACKAGE_CHECKS, PACKAGE_INPUTS, title_packages
from consodam_pipeline.derived.rules import rules_in_force
from consodam_pipeline.domain.periods import partition_slice
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.sync.partitions import EDITION_CHANGES, by_period, period_asset


@period_asset(
    name="title_asset_packages",
    **by_period(),
    deps=[EDITION_CHANGES],
    group_name="workflow",
    kinds={"polars"},
    check_specs=PACKAGE_CHECKS,
    description="Edition × package requirement of its format (print, ebook, audio: ONIX 158 content types and "
    "the retailers' technical requirements) → approved / in_review / fails_technical / rejected / missing, "
    "and the milestone the edition is at. Rules: consodam_pipeline/domain/rules.toml.",
)
def title_asset_packages(  # type: ignore[no-untyped-def]  # an annotation would be read as the output's type
    context: dg.AssetExecutionContext,
    title_metadata_snapshot: pl.DataFrame,
    dam_asset_inventory: pl.LazyFrame,
    lineage: LineageStoreResource,
):
    inventory = dam_asset_inventory.select(PACKAGE_INPUTS)
    editions, versions = partition_slice(title_metadata_snapshot, inventory, context.partition_keys)
    return title_packages(
        lineage.store(), editions, versions, rules_in_force(), context.run.run_id, context.partition_keys
    )
