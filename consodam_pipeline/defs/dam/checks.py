"""Checks on the DAM inventory: approvals are attributed, and the quarantine count (incl. orphan tags)."""

import dagster as dg
import polars as pl

from consodam_pipeline.defs.dam.records import ORPHAN_SOURCE, SOURCE
from consodam_pipeline.defs.quarantine import quarantine_check_result
from consodam_pipeline.store.resource import LineageStoreResource

INVENTORY = dg.AssetKey("dam_asset_inventory")


@dg.asset_check(asset=INVENTORY, description="Every approved version says who approved it and when.")
def approvals_are_attributed(dam_asset_inventory: pl.DataFrame) -> dg.AssetCheckResult:
    approved = dam_asset_inventory.filter(pl.col("approval_status") == "approved")
    anonymous = approved.filter(pl.col("approved_by").is_null() | pl.col("approved_at").is_null())
    return dg.AssetCheckResult(
        passed=anonymous.height == 0,
        metadata={"approved_versions": approved.height, "without_approver_or_time": anonymous.height},
    )


@dg.asset_check(
    asset=INVENTORY, description="DAM versions in quarantine (bad tags, dates, codes, orphan ISBNs)."
)
def quarantined_dam_records(lineage: LineageStoreResource) -> dg.AssetCheckResult:
    return quarantine_check_result(lineage, SOURCE, ORPHAN_SOURCE)
