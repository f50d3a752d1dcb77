"""consonance_production_files (F5) for a slice of periods: each met package requirement referenced as a
production file on the edition in Consonance (type = the requirement, URL = the approved DAM version)."""

from __future__ import annotations

import polars as pl

from consodam_pipeline.store.tables import PARTITION_COLUMN
from consodam_pipeline.sync.consonance_resources import PackageFileTarget, reference_state

FILES_ENTITY = "consonance_production_file"


def production_file_writes(packages: pl.DataFrame, dam_url: str) -> tuple[PackageFileTarget, pl.DataFrame]:
    """The target for these packages, and a reference wanted (key, state) per met requirement."""
    key = pl.format("{}|{}", "product_id", "requirement").alias("key")
    slots = packages.select(
        key,
        "product_id",
        "isbn13",
        "work_id",
        pl.col("asset_id").alias("dam_asset_id"),
        pl.col("version").alias("dam_version"),
        pl.col("requirement").alias("role"),
        "status",
        PARTITION_COLUMN,
    )
    target = PackageFileTarget(
        entity=FILES_ENTITY,
        written_event="package_referenced",
        removed_event="package_reference_removed",
        dam_url=dam_url,
        isbns=dict(packages.select("product_id", "isbn13").unique().iter_rows()),
        slots_of=slots,
    )
    state = pl.struct("requirement", "version", "asset_id").map_elements(
        lambda r: reference_state(
            f"{r['requirement']} v{r['version']}", r["requirement"], target.content_url(r["asset_id"])
        ),
        return_dtype=pl.String,
    )
    desired = packages.filter(pl.col("status") == "approved").select(key, state.alias("state"))
    return target, desired
