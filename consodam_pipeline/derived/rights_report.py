"""What the rights matrix tells a person and the checks that guard it: a sample recomputed with the scalar
rules (blocking), no grant before the embargo (blocking), and approved versions no edition grants (warn)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg
import polars as pl

from consodam_pipeline.derived.rights_reference import embargo_breaches, violations
from consodam_pipeline.domain.roles import MARKETING_ROLES
from consodam_pipeline.sync.report import (
    EDITION_KEY_COLUMNS,
    TITLES,
    VERSION_COLUMNS,
    VERSIONS,
    column_lineage,
    column_schema,
    summary_markdown,
)

CHECK_SAMPLE = 5000
_SALES_RIGHTS = [
    "for_sale_worldwide",
    "for_sale_countries",
    "not_for_sale_countries",
    "row_sales_rights_type",
]
_LICENSE = ["license_from", "license_until", "approval_status"]
MATRIX_LINEAGE: dict[str, dict[str, list[str]]] = {
    **EDITION_KEY_COLUMNS,
    **VERSION_COLUMNS,
    "countries": {TITLES: _SALES_RIGHTS},
    **{f"grant_w{i}": {TITLES: _SALES_RIGHTS} for i in range(4)},
    "grant_from": {TITLES: ["publication_date", "embargo_date"], VERSIONS: ["license_from"]},
    "grant_until": {VERSIONS: ["license_until"]},
    "visible": {TITLES: ["embargo_date"], VERSIONS: _LICENSE},
    "downloadable": {TITLES: ["embargo_date"], VERSIONS: _LICENSE},
    "denied_reason": {TITLES: [*_SALES_RIGHTS, "embargo_date"], VERSIONS: _LICENSE},
}
MATRIX = "rights_matrix"
RIGHTS_CHECKS = [
    dg.AssetCheckSpec(
        "grants_follow_the_rules",
        asset=MATRIX,
        blocking=True,
        description="A sample of rows recomputed one by one with the scalar rules agrees.",
    ),
    dg.AssetCheckSpec(
        "no_grant_before_embargo",
        asset=MATRIX,
        blocking=True,
        description="No asset is granted before its edition's sales embargo lifts.",
    ),
    dg.AssetCheckSpec(
        "assets_without_rights_source",
        asset=MATRIX,
        description="Newest approved versions that no edition grants anywhere.",
    ),
]


def rights_checks(
    matrix: pl.DataFrame, editions: pl.DataFrame, versions: pl.DataFrame
) -> list[dg.AssetCheckResult]:
    problems = violations(matrix, editions, versions, CHECK_SAMPLE)
    examples = dg.MetadataValue.md("\n".join(f"- {p}" for p in problems[:10]) or "none")
    checked: dict[str, Any] = {
        "rows_checked": min(matrix.height, CHECK_SAMPLE),
        "disagreements": len(problems),
        "examples": examples,
    }
    breaches = embargo_breaches(matrix)
    return [
        dg.AssetCheckResult(check_name="grants_follow_the_rules", passed=not problems, metadata=checked),
        dg.AssetCheckResult(
            check_name="no_grant_before_embargo",
            passed=breaches.height == 0,
            metadata={"breaches": breaches.height},
        ),
        no_rights_source(matrix, versions),
    ]


def no_rights_source(matrix: pl.DataFrame, versions: pl.DataFrame) -> dg.AssetCheckResult:
    approved_marketing = (pl.col("approval_status") == "approved") & pl.col("role").is_in(MARKETING_ROLES)
    newest = versions.filter(approved_marketing).filter(
        pl.col("version") == pl.col("version").max().over("original_asset_id")
    )
    granted = matrix.filter(pl.col("visible"))["asset_id"].unique().implode()
    orphans = newest.filter(pl.col("orphan_tag")).height
    ungranted = newest.filter(~pl.col("orphan_tag") & ~pl.col("asset_id").is_in(granted)).height
    return dg.AssetCheckResult(
        check_name="assets_without_rights_source",
        passed=orphans + ungranted == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"orphan_tagged": orphans, "no_edition_grants_them": ungranted},
    )


def matrix_metadata(matrix: pl.DataFrame, keys: Sequence[str]) -> dict[str, Any]:
    granted = matrix.filter(pl.col("visible"))
    denied = matrix.filter(~pl.col("visible")).group_by("denied_reason").len().sort("len", descending=True)
    periods = ", ".join(keys[:6]) + (" …" if len(keys) > 6 else "")
    summary = [("periods", periods), ("edition × version rows", matrix.height), ("granted", granted.height)]
    return {
        "dagster/row_count": matrix.height,
        "dagster/column_schema": column_schema(matrix.schema),
        "dagster/column_lineage": column_lineage(MATRIX_LINEAGE, matrix.columns),
        "partitions": len(keys),
        "granted_rows": granted.height,
        "downloadable_rows": matrix.filter(pl.col("downloadable")).height,
        "denied_by_reason": {str(r): int(n) for r, n in denied.iter_rows()},
        "summary": summary_markdown(
            "Rights matrix", summary + [(f"denied: {r}", n) for r, n in denied.iter_rows()]
        ),
    }
