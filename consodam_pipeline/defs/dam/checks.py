"""Checks on the DAM inventory: approvals are attributed, and the quarantine count (incl. orphan tags)."""

import dagster as dg
import polars as pl

from consodam_pipeline.defs.dam.records import ORPHAN_SOURCE, SOURCE
from consodam_pipeline.defs.quarantine import quarantine_check_result
from consodam_pipeline.store.resource import LineageStoreResource

INVENTORY = dg.AssetKey("dam_asset_inventory")


@dg.asset_check(asset=INVENTORY, description="Every approved version says who approved it and when.")
def approvals_are_attributed(dam_asset_inventory: pl.LazyFrame) -> dg.AssetCheckResult:
    approved = pl.col("approval_status") == "approved"
    anonymous = approved & (pl.col("approved_by").is_null() | pl.col("approved_at").is_null())
    counts = dam_asset_inventory.select(
        approved.sum().alias("approved"), anonymous.sum().alias("anonymous")
    ).collect(engine="streaming")
    approved_n, anonymous_n = (int(v) for v in counts.row(0))
    return dg.AssetCheckResult(
        passed=anonymous_n == 0,
        metadata={"approved_versions": approved_n, "without_approver_or_time": anonymous_n},
    )


@dg.asset_check(
    asset=INVENTORY, description="DAM versions in quarantine (bad tags, dates, codes, orphan ISBNs)."
)
def quarantined_dam_records(lineage: LineageStoreResource) -> dg.AssetCheckResult:
    return quarantine_check_result(lineage, SOURCE, ORPHAN_SOURCE)
