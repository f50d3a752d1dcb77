"""Publication periods: how the edition-level graph is partitioned, and which editions and versions each holds.

Partitions are publication periods (a few hundred keys at most: Dagster spends ~25–40 ms of bookkeeping
per partition in a backfill, so one per ISBN would cost hours): `before-1980`, years to 2009, quarters
from 2010 to two years ahead, `later`, `undated`. Every edition and asset of a work lives in the period of
the work's first publication, so a work-wide asset (an author photo) has one owner.
"""

from collections.abc import Iterable, Sequence
from datetime import date

import polars as pl

FIRST_YEARLY = 1980
FIRST_QUARTERLY = 2010
UNDATED = "undated"
EARLIER = f"before-{FIRST_YEARLY}"
LATER = "later"
LAST_YEAR = date.today().year + 2


def period_keys(last_year: int | None = None) -> list[str]:
    last = last_year or LAST_YEAR
    yearly = [str(y) for y in range(FIRST_YEARLY, FIRST_QUARTERLY)]
    quarterly = [f"{y}-Q{q}" for y in range(FIRST_QUARTERLY, last + 1) for q in range(1, 5)]
    return [EARLIER, *yearly, *quarterly, LATER, UNDATED]


def period_expr(column: str) -> pl.Expr:
    """The period key of a date column (vectorised)."""
    day = pl.col(column)
    year = day.dt.year()
    quarter = ((day.dt.month() - 1) // 3 + 1).cast(pl.String)
    return (
        pl.when(day.is_null())
        .then(pl.lit(UNDATED))
        .when(year < FIRST_YEARLY)
        .then(pl.lit(EARLIER))
        .when(year < FIRST_QUARTERLY)
        .then(year.cast(pl.String))
        .when(year <= LAST_YEAR)
        .then(pl.concat_str(year.cast(pl.String), pl.lit("-Q"), quarter))
        .otherwise(pl.lit(LATER))
    )


def work_periods(editions: pl.DataFrame) -> pl.DataFrame:
    """(work_id, period): the period of each work's first publication."""
    return (
        editions.group_by("work_id")
        .agg(pl.col("publication_date").min().alias("first_published"))
        .select("work_id", period_expr("first_published").alias("period"))
    )


def periods_for_works(editions: pl.DataFrame, work_ids: Sequence[int]) -> list[str]:
    ids = pl.Series(list(work_ids), dtype=pl.Int64).implode()
    return sorted(set(work_periods(editions).filter(pl.col("work_id").is_in(ids))["period"].to_list()))


def all_periods(editions: pl.DataFrame) -> list[str]:
    return sorted(set(work_periods(editions)["period"].to_list()))


def with_period(frame: pl.DataFrame, editions: pl.DataFrame, name: str) -> pl.DataFrame:
    """The frame with the period of its work (by `work_id`) as column `name`."""
    periods = work_periods(editions).select("work_id", pl.col("period").alias(name))
    return frame.join(periods, on="work_id", how="left")


def contiguous_ranges(keys: Iterable[str], order: Sequence[str] | None = None) -> list[list[str]]:
    """The given period keys grouped into runs of neighbours, in partition order: a run over a range
    materializes every key between its ends, so only neighbours may share one."""
    position = {key: i for i, key in enumerate(order or period_keys())}
    ranges: list[list[str]] = []
    for key in sorted(set(keys), key=lambda k: position[k]):
        if ranges and position[ranges[-1][-1]] + 1 == position[key]:
            ranges[-1].append(key)
        else:
            ranges.append([key])
    return ranges


def works_in(editions: pl.DataFrame, keys: Sequence[str]) -> pl.DataFrame:
    periods = work_periods(editions).filter(pl.col("period").is_in(list(keys)))
    return editions.join(periods.select("work_id"), on="work_id", how="semi")


def versions_of(inventory: pl.DataFrame | pl.LazyFrame, editions: pl.DataFrame) -> pl.DataFrame:
    """The DAM versions of these editions: tagged with their ISBNs or their works. A lazy inventory is
    filtered as it is read, so only these versions are ever in memory."""
    versions = inventory.filter(
        pl.col("work_id").is_in(editions["work_id"].unique().implode())
        | pl.col("isbn13").is_in(editions["isbn13"].unique().implode())
    )
    return versions.collect() if isinstance(versions, pl.LazyFrame) else versions


def partition_slice(
    editions: pl.DataFrame, inventory: pl.DataFrame | pl.LazyFrame, keys: Sequence[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The editions and asset versions owned by these periods (a work and all its assets live in one)."""
    owned = works_in(editions, keys)
    return owned, versions_of(inventory, owned)


def version_slots(versions: pl.DataFrame) -> pl.DataFrame:
    """One row per asset version a DAM write considers: its id (the slot) and what a ledger event names."""
    return versions.select(
        pl.col("asset_id").alias("key"),
        "isbn13",
        "work_id",
        pl.col("asset_id").alias("dam_asset_id"),
        pl.col("version").alias("dam_version"),
        "role",
    )
