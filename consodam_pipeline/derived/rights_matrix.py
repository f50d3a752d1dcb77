"""The rights matrix, vectorised: edition × asset version → where and when it may be seen / downloaded.

The rules are those of consodam_pipeline.domain.rights (one place); this is their columnar form, and the
blocking check recomputes sampled rows with the scalar form to prove the two agree.
"""

import polars as pl

from consodam_pipeline.derived.versions import newest_approved_version
from consodam_pipeline.domain.periods import work_periods
from consodam_pipeline.domain.rights import NOTHING, PRODUCTION_FILE, SEE_ONLY
from consodam_pipeline.domain.roles import MARKETING_ROLES
from consodam_pipeline.domain.territories import (
    WORDS,
    complement_exprs,
    country_count_expr,
    masks_from_code_lists,
    union_exprs,
    word_columns,
)
from consodam_pipeline.sync.dam_ingest import VERSION_IDENTITY

GRANT = word_columns("grant")
# What the matrix and its checks read of each snapshot (the step reads only these from Parquet).
EDITION_INPUTS = [
    "product_id",
    "isbn13",
    "work_id",
    "publication_date",
    "publishing_status",
    "embargo_date",
    "for_sale_worldwide",
    "for_sale_countries",
    "not_for_sale_countries",
    "row_sales_rights_type",
]
VERSION_INPUTS = [*VERSION_IDENTITY, "license_from", "license_until", "orphan_tag"]


def edition_territories(editions: pl.DataFrame) -> pl.DataFrame:
    """Each edition's resolved for-sale set as mask words `sale_w0..3` (ONIX 3.0 semantics)."""
    frame = masks_from_code_lists(editions, "for_sale_countries", "fs")
    frame = masks_from_code_lists(frame, "not_for_sale_countries", "nfs")
    frame = frame.with_columns(union_exprs("fs", "nfs", "named")).with_columns(
        complement_exprs("named", "rest")
    )
    row_for_sale = pl.col("row_sales_rights_type").is_in(["01", "02"]).fill_null(False)
    sale = []
    for i in range(WORDS):
        nfs, fs, rest = pl.col(f"nfs_w{i}"), pl.col(f"fs_w{i}"), pl.col(f"rest_w{i}")
        everything = pl.col(f"named_w{i}") | rest
        explicit = fs | pl.when(row_for_sale).then(rest).otherwise(pl.lit(0, dtype=pl.UInt64))
        sale.append(
            (pl.when(pl.col("for_sale_worldwide")).then(everything).otherwise(explicit) & ~nfs).alias(
                f"sale_w{i}"
            )
        )
    return frame.with_columns(sale).select(
        "product_id", "isbn13", "work_id", "publishing_status", "embargo_date", *word_columns("sale")
    )


def rights_matrix(editions: pl.DataFrame, inventory: pl.DataFrame) -> pl.DataFrame:
    """One row per (edition, asset version that belongs to it), with the grant and why it is (not) given."""
    territories = edition_territories(editions).lazy()
    periods = work_periods(editions).lazy()
    versions = (
        inventory.lazy()
        .filter(~pl.col("orphan_tag"))
        .with_columns(
            (pl.col("version") == newest_approved_version("original_asset_id"))
            .fill_null(False)
            .alias("newest_approved")
        )
    )
    asset_cols = [
        "asset_id",
        "original_asset_id",
        "version",
        "role",
        "approval_status",
        "newest_approved",
        "license_from",
        "license_until",
    ]
    edition_specific = (
        versions.filter(pl.col("isbn13").is_not_null())
        .select(*asset_cols, "isbn13")
        .join(territories, on="isbn13")
    )
    work_wide = (
        versions.filter(pl.col("isbn13").is_null())
        .select(*asset_cols, "work_id")
        .join(territories, on="work_id")
    )
    joined = pl.concat([edition_specific, work_wide], how="diagonal_relaxed").join(periods, on="work_id")
    # One lazy plan, collected once: polars fuses the steps and runs them on every core.
    start = pl.col("window_opens")
    reason = (
        pl.when(~pl.col("role").is_in(MARKETING_ROLES))
        .then(pl.lit(PRODUCTION_FILE))
        .when(pl.col("approval_status") != "approved")
        .then(pl.lit("not approved"))
        .when(~pl.col("newest_approved"))
        .then(pl.lit("superseded by a newer approved version"))
        .when(pl.col("publishing_status").is_in(list(NOTHING)))
        .then(pl.format("publishing status {}", pl.col("publishing_status")))
        .when(pl.all_horizontal(pl.col(c) == 0 for c in word_columns("sale")))
        .then(pl.lit("no sales rights"))
        .when(pl.col("license_until").is_not_null() & start.is_not_null() & (pl.col("license_until") < start))
        .then(pl.lit("license ends before the window opens"))
    )
    # The reason is computed once and read back by name: an expression repeated in several columns is
    # evaluated once per use (the rules' chain, nine times over, was half the matrix's time).
    granted = pl.col("denied_reason").is_null()
    return (
        joined.with_columns(pl.max_horizontal("license_from", "embargo_date").alias("window_opens"))
        .with_columns(reason.alias("denied_reason"))
        .with_columns(
            [
                pl.when(granted)
                .then(pl.col(f"sale_w{i}"))
                .otherwise(pl.lit(0, dtype=pl.UInt64))
                .alias(f"grant_w{i}")
                for i in range(WORDS)
            ]
            + [
                granted.alias("visible"),
                (granted & ~pl.col("publishing_status").is_in(list(SEE_ONLY))).alias("downloadable"),
                pl.when(granted).then(start).alias("grant_from"),
                pl.when(granted).then(pl.col("license_until")).alias("grant_until"),
            ]
        )
        .with_columns(country_count_expr("grant").alias("countries"))
        .select(
            "period",
            "product_id",
            "isbn13",
            "work_id",
            "asset_id",
            "original_asset_id",
            "version",
            "role",
            "visible",
            "downloadable",
            "countries",
            "grant_from",
            "grant_until",
            "embargo_date",
            *GRANT,
            "denied_reason",
        )
        .collect(engine="streaming")
    )


def asset_grants(matrix: pl.DataFrame) -> pl.DataFrame:
    """Rule 5: an asset version shared by several editions gets the union of their grants."""
    return (
        matrix.group_by("asset_id", "period")
        .agg(
            *[pl.col(f"grant_w{i}").bitwise_or() for i in range(WORDS)],
            pl.col("visible").any(),
            pl.col("downloadable").any(),
            pl.when(pl.col("visible")).then(pl.col("grant_from")).min().alias("grant_from"),
            pl.when(pl.col("visible")).then(pl.col("grant_from")).is_null().any().alias("open_start"),
            pl.when(pl.col("visible")).then(pl.col("grant_until")).max().alias("grant_until"),
            (pl.col("visible") & pl.col("grant_until").is_null()).any().alias("open_end"),
        )
        .with_columns(
            pl.when(pl.col("open_start") | ~pl.col("visible"))
            .then(None)
            .otherwise(pl.col("grant_from"))
            .alias("grant_from"),
            pl.when(pl.col("open_end") | ~pl.col("visible"))
            .then(None)
            .otherwise(pl.col("grant_until"))
            .alias("grant_until"),
        )
        .drop("open_start", "open_end")
        .sort("asset_id")
    )
