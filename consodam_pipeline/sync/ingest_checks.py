"""The ingest snapshots' checks: valid, unique ISBN-13s (blocking), attributed approvals, and the quarantine.

They are evaluated in the ingest's own step, on the snapshot it has just stored (a check as a step of its
own is a process to start and the snapshot to read again, for a few milliseconds of work).
"""

from __future__ import annotations

import dagster as dg
import polars as pl

from consodam_pipeline.domain.isbn import isbn13_valid_expr
from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.sync.probe import INVENTORY, TITLES
from consodam_pipeline.sync.report import quarantine_check_result

TITLE_CHECKS = [
    dg.AssetCheckSpec(
        "editions_have_valid_unique_isbns",
        asset=TITLES,
        blocking=True,
        description="Every edition has a valid ISBN-13, used by one edition.",
    ),
    dg.AssetCheckSpec(
        "quarantined_title_records",
        asset=TITLES,
        description="Consonance records in quarantine (invalid ISBN, territory, date, code).",
    ),
]
INVENTORY_CHECKS = [
    dg.AssetCheckSpec(
        "approvals_are_attributed",
        asset=INVENTORY,
        description="Every approved version says who approved it and when.",
    ),
    dg.AssetCheckSpec(
        "quarantined_dam_records",
        asset=INVENTORY,
        description="DAM versions in quarantine (bad tags, dates, codes, orphan ISBNs).",
    ),
]


def valid_unique_isbns(editions: pl.LazyFrame) -> dg.AssetCheckResult:
    isbns = editions.select("isbn13").collect()
    invalid = isbns.filter(~isbn13_valid_expr("isbn13"))
    duplicated = isbns.filter(pl.col("isbn13").is_duplicated())
    return dg.AssetCheckResult(
        check_name="editions_have_valid_unique_isbns",
        passed=invalid.height == 0 and duplicated.height == 0,
        metadata={
            "invalid_isbns": invalid.height,
            "duplicated_isbns": duplicated["isbn13"].n_unique(),
            "examples": ", ".join(duplicated["isbn13"].unique().sort().head(5).to_list()) or "—",
        },
    )


def approvals_attributed(versions: pl.LazyFrame) -> dg.AssetCheckResult:
    approved = pl.col("approval_status") == "approved"
    anonymous = approved & (pl.col("approved_by").is_null() | pl.col("approved_at").is_null())
    counts = versions.select(approved.sum(), anonymous.sum().alias("anonymous")).collect(engine="streaming")
    approved_n, anonymous_n = (int(v) for v in counts.row(0))
    return dg.AssetCheckResult(
        check_name="approvals_are_attributed",
        passed=anonymous_n == 0,
        metadata={"approved_versions": approved_n, "without_approver_or_time": anonymous_n},
    )


def title_check_results(
    store: LineageStore, editions: pl.LazyFrame, source: str
) -> list[dg.AssetCheckResult]:
    return [
        valid_unique_isbns(editions),
        quarantine_check_result(store, source, check_name="quarantined_title_records"),
    ]


def inventory_check_results(
    store: LineageStore, versions: pl.LazyFrame, *sources: str
) -> list[dg.AssetCheckResult]:
    return [
        approvals_attributed(versions),
        quarantine_check_result(store, *sources, check_name="quarantined_dam_records"),
    ]
