"""Checks on the ingest snapshots: valid, unique ISBN-13s (blocking), attributed approvals, and the quarantine."""

import dagster as dg
import polars as pl

from consodam_pipeline.domain.isbn import isbn13_valid_expr
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.sync import consonance_ingest, dam_ingest
from consodam_pipeline.sync.probe import INVENTORY, TITLES
from consodam_pipeline.sync.report import quarantine_check_result


@dg.asset_check(
    asset=TITLES, blocking=True, description="Every edition has a valid ISBN-13, used by one edition."
)
def editions_have_valid_unique_isbns(title_metadata_snapshot: pl.DataFrame) -> dg.AssetCheckResult:
    invalid = title_metadata_snapshot.filter(~isbn13_valid_expr("isbn13"))
    duplicated = title_metadata_snapshot.filter(pl.col("isbn13").is_duplicated())
    return dg.AssetCheckResult(
        passed=invalid.height == 0 and duplicated.height == 0,
        metadata={
            "invalid_isbns": invalid.height,
            "duplicated_isbns": duplicated["isbn13"].n_unique(),
            "examples": ", ".join(duplicated["isbn13"].unique().sort().head(5).to_list()) or "—",
        },
    )


@dg.asset_check(
    asset=TITLES, description="Consonance records in quarantine (invalid ISBN, territory, date, code)."
)
def quarantined_title_records(lineage: LineageStoreResource) -> dg.AssetCheckResult:
    return quarantine_check_result(lineage.store(), consonance_ingest.SOURCE)


@dg.asset_check(asset=INVENTORY, description="Every approved version says who approved it and when.")
def approvals_are_attributed(dam_asset_inventory: pl.LazyFrame) -> dg.AssetCheckResult:
    approved = pl.col("approval_status") == "approved"
    anonymous = approved & (pl.col("approved_by").is_null() | pl.col("approved_at").is_null())
    counts = dam_asset_inventory.select(approved.sum(), anonymous.sum().alias("anonymous")).collect(
        engine="streaming"
    )
    approved_n, anonymous_n = (int(v) for v in counts.row(0))
    return dg.AssetCheckResult(
        passed=anonymous_n == 0,
        metadata={"approved_versions": approved_n, "without_approver_or_time": anonymous_n},
    )


@dg.asset_check(
    asset=INVENTORY, description="DAM versions in quarantine (bad tags, dates, codes, orphan ISBNs)."
)
def quarantined_dam_records(lineage: LineageStoreResource) -> dg.AssetCheckResult:
    return quarantine_check_result(lineage.store(), dam_ingest.SOURCE, dam_ingest.ORPHAN_SOURCE)
