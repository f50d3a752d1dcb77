"""Independent recomputation of rights-matrix rows with the scalar rules (domain/rights.py), row by row.

Used by the blocking check (on a sample) and by the benchmark as the naive baseline (in full).
"""

from typing import Any

import polars as pl

from consodam_pipeline.domain.onix import SalesRightsType
from consodam_pipeline.domain.rights import AssetTerms, EditionRights, Grant, grant
from consodam_pipeline.domain.roles import MARKETING_ROLES
from consodam_pipeline.domain.territories import WORLD, SalesRightsBlock, TerritorySet, resolve_sales_rights


def edition_rights(row: dict[str, Any]) -> EditionRights:
    not_for_sale = tuple(row["not_for_sale_countries"] or ())
    if row["for_sale_worldwide"]:
        blocks = [
            SalesRightsBlock(
                SalesRightsType.FOR_SALE_EXCLUSIVE, regions_included=(WORLD,), countries_excluded=not_for_sale
            )
        ]
    else:
        blocks = []
        if row["for_sale_countries"]:
            blocks.append(
                SalesRightsBlock(SalesRightsType.FOR_SALE_EXCLUSIVE, tuple(row["for_sale_countries"]))
            )
        if not_for_sale:
            blocks.append(SalesRightsBlock(SalesRightsType.NOT_FOR_SALE, not_for_sale))
    row_type = SalesRightsType.parse(row["row_sales_rights_type"]) if row["row_sales_rights_type"] else None
    resolved = resolve_sales_rights(blocks, row_type) if blocks or row_type else None
    for_sale = resolved.for_sale if resolved else TerritorySet()
    return EditionRights(for_sale, row["publishing_status"], row["embargo_date"])


def newest_approved(inventory: pl.DataFrame) -> dict[str, int]:
    newest: dict[str, int] = {}
    for row in inventory.select("original_asset_id", "version", "approval_status").iter_rows(named=True):
        if row["approval_status"] == "approved":
            newest[row["original_asset_id"]] = max(newest.get(row["original_asset_id"], 0), row["version"])
    return newest


def asset_terms(row: dict[str, Any], newest: dict[str, int]) -> AssetTerms:
    approved = row["approval_status"] == "approved"
    return AssetTerms(
        approved=approved,
        superseded=approved and newest.get(row["original_asset_id"], 0) > row["version"],
        license_from=row["license_from"],
        license_until=row["license_until"],
        orphan=bool(row["orphan_tag"]),
        production_master=row["role"] not in MARKETING_ROLES,
    )


def naive_grants(editions: pl.DataFrame, inventory: pl.DataFrame) -> dict[tuple[int, str], Grant]:
    """Every (product_id, asset_id) grant, one Python call per pair."""
    newest = newest_approved(inventory)
    by_isbn: dict[str, list[dict[str, Any]]] = {}
    by_work: dict[int, list[dict[str, Any]]] = {}
    for row in editions.iter_rows(named=True):
        by_isbn.setdefault(row["isbn13"], []).append(row)
        by_work.setdefault(row["work_id"], []).append(row)
    grants: dict[tuple[int, str], Grant] = {}
    for asset in inventory.iter_rows(named=True):
        if asset["orphan_tag"]:
            continue
        owners = by_isbn.get(asset["isbn13"], []) if asset["isbn13"] else by_work.get(asset["work_id"], [])
        terms = asset_terms(asset, newest)
        for edition in owners:
            grants[(edition["product_id"], asset["asset_id"])] = grant(edition_rights(edition), terms)
    return grants


def violations(
    matrix: pl.DataFrame, editions: pl.DataFrame, inventory: pl.DataFrame, sample: int, seed: int = 0
) -> list[str]:
    """Rows of the matrix whose grant differs from the scalar rules' (a sample, or all if smaller)."""
    rows = matrix if matrix.height <= sample else matrix.sample(sample, seed=seed)
    asset_ids = rows["asset_id"].unique().implode()
    originals = inventory.filter(pl.col("asset_id").is_in(asset_ids))["original_asset_id"].unique().implode()
    related = inventory.filter(pl.col("original_asset_id").is_in(originals))
    newest = newest_approved(related)
    assets = {r["asset_id"]: r for r in related.iter_rows(named=True)}
    sampled = editions.filter(pl.col("product_id").is_in(rows["product_id"].unique().implode()))
    by_id = {r["product_id"]: r for r in sampled.iter_rows(named=True)}
    problems = []
    for row in rows.iter_rows(named=True):
        expected = grant(
            edition_rights(by_id[row["product_id"]]), asset_terms(assets[row["asset_id"]], newest)
        )
        got = TerritorySet.from_words([row[f"grant_w{i}"] for i in range(4)])
        window = (row["grant_from"], row["grant_until"]) if row["visible"] else (None, None)
        if (got, row["visible"], row["downloadable"], window) != (
            expected.countries,
            expected.visible,
            expected.downloadable,
            (expected.start, expected.end),
        ):
            problems.append(
                f"product {row['product_id']} × {row['asset_id']}: matrix {got.describe() or 'none'} "
                f"{window}, rules {expected.countries.describe() or 'none'} "
                f"({expected.start}, {expected.end}) {expected.reason or ''}"
            )
    return problems


def embargo_breaches(matrix: pl.DataFrame) -> pl.DataFrame:
    """Granted rows whose window opens before the edition's sales embargo lifts (must be none)."""
    return matrix.filter(
        pl.col("visible")
        & pl.col("embargo_date").is_not_null()
        & (pl.col("grant_from").is_null() | (pl.col("grant_from") < pl.col("embargo_date")))
    )
