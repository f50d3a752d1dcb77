"""Checks on the title snapshot: valid, unique ISBN-13s (blocking) and the quarantine count."""

import dagster as dg
import polars as pl

from consodam_pipeline.defs.consonance.records import SOURCE
from consodam_pipeline.defs.quarantine import quarantine_check_result
from consodam_pipeline.domain.isbn import isbn13_valid_expr
from consodam_pipeline.store.resource import LineageStoreResource

TITLES = dg.AssetKey("title_metadata_snapshot")


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
    return quarantine_check_result(lineage, SOURCE)
