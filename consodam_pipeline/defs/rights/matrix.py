"""rights_matrix (F4): edition × DAM asset version → where and when it may be seen and downloaded."""

import dagster as dg
import polars as pl

from consodam_pipeline.derived.rights_matrix import EDITION_INPUTS, VERSION_INPUTS
from consodam_pipeline.derived.rights_matrix import rights_matrix as build_matrix
from consodam_pipeline.derived.rights_report import RIGHTS_CHECKS, matrix_metadata, rights_checks
from consodam_pipeline.domain.periods import partition_slice
from consodam_pipeline.store.tables import PARTITION_COLUMN
from consodam_pipeline.sync.partitions import EDITION_CHANGES, by_period, period_asset


@period_asset(
    name="rights_matrix",
    **by_period(),
    deps=[EDITION_CHANGES],
    check_specs=RIGHTS_CHECKS,
    group_name="rights",
    kinds={"polars"},
    description="Edition × DAM asset version → where (territory mask) and when (window) it may be seen and "
    "downloaded, and why not where it may not. Rules: consodam_pipeline/domain/rights.py.",
)
def rights_matrix(  # type: ignore[no-untyped-def]  # an annotation would be read as the output's type
    context: dg.AssetExecutionContext,
    title_metadata_snapshot: pl.LazyFrame,
    dam_asset_inventory: pl.LazyFrame,
):
    editions, versions = partition_slice(
        title_metadata_snapshot.select(EDITION_INPUTS).collect(),
        dam_asset_inventory.select(VERSION_INPUTS),
        context.partition_keys,
    )
    matrix = build_matrix(editions, versions)
    return dg.MaterializeResult(
        value=matrix.rename({"period": PARTITION_COLUMN}),
        check_results=rights_checks(matrix, editions, versions),
        metadata=matrix_metadata(matrix, context.partition_keys),
    )
