"""How the edition-level graph is partitioned, and how ingest tells it which partitions changed.

Partitions are publication periods (a few hundred keys at most: Dagster spends ~25–40 ms of bookkeeping
per partition in a backfill, so one per ISBN would cost hours). Every edition and asset of a work lives
in the period of the work's first publication, so a work-wide asset (an author photo) has one owner.
Ingest records a materialization of `edition_changes` for each period its changes touched (before and
after: an edition whose date moves touches both), and the edition-level assets react to exactly those.
"""

import warnings
from collections.abc import Iterable
from datetime import date
from typing import Any

import dagster as dg
import polars as pl

# Single-run backfills are how this graph runs (README, "The edition graph"); Dagster flags the parameter
# as beta at every definition load, which would open each command's output with the same warning.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)

FIRST_YEARLY = 1980
FIRST_QUARTERLY = 2010
UNDATED = "undated"
EARLIER = f"before-{FIRST_YEARLY}"
LATER = "later"


def period_keys(last_year: int | None = None) -> list[str]:
    last = last_year or date.today().year + 2
    yearly = [str(y) for y in range(FIRST_YEARLY, FIRST_QUARTERLY)]
    quarterly = [f"{y}-Q{q}" for y in range(FIRST_QUARTERLY, last + 1) for q in range(1, 5)]
    return [EARLIER, *yearly, *quarterly, LATER, UNDATED]


publication_periods = dg.StaticPartitionsDefinition(period_keys())
LAST_YEAR = date.today().year + 2
EDITION_CHANGES = dg.AssetKey("edition_changes")


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


def change_events(periods: list[str], source: str) -> list[dg.AssetMaterialization]:
    return [
        dg.AssetMaterialization(asset_key=EDITION_CHANGES, partition=period, metadata={"source": source})
        for period in periods
    ]


edition_changes = dg.AssetSpec(
    EDITION_CHANGES,
    partitions_def=publication_periods,
    deps=["title_metadata_snapshot", "dam_asset_inventory"],
    group_name="ingest",
    description="A marker per publication period: recorded by the ingest assets for every period their "
    "changes touched. The edition-level assets re-materialize exactly these partitions.",
)


def periods_for_works(editions: pl.DataFrame, work_ids: list[int]) -> list[str]:
    ids = pl.Series(work_ids, dtype=pl.Int64).implode()
    return sorted(set(work_periods(editions).filter(pl.col("work_id").is_in(ids))["period"].to_list()))


def all_periods(editions: pl.DataFrame) -> list[str]:
    return sorted(set(work_periods(editions)["period"].to_list()))


def on_updates_of(*keys: dg.AssetKey | str) -> dg.AutomationCondition:
    """Eager, but only for the given upstream keys (not the unpartitioned snapshots it also reads, whose every
    update would otherwise request every partition), and only after their blocking checks passed — so the
    DAM is never written from a rights matrix that failed its checks."""
    selection = dg.AssetSelection.assets(*keys)
    return (
        (
            dg.AutomationCondition.newly_missing()
            | dg.AutomationCondition.any_deps_updated().allow(selection)
        ).since_last_handled()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        & dg.AutomationCondition.all_deps_blocking_checks_passed().allow(selection)
    ).with_label(f"on updates of {', '.join(dg.AssetKey.from_coercible(k).to_user_string() for k in keys)}")


def contiguous_ranges(keys: Iterable[str]) -> list[list[str]]:
    """The given period keys grouped into runs of neighbours, in partition order: a run over a range
    materializes every key between its ends, so only neighbours may share one."""
    order = {key: i for i, key in enumerate(publication_periods.get_partition_keys())}
    ranges: list[list[str]] = []
    for key in sorted(set(keys), key=lambda k: order[k]):
        if ranges and order[ranges[-1][-1]] + 1 == order[key]:
            ranges[-1].append(key)
        else:
            ranges.append([key])
    return ranges


def range_tags(keys: list[str]) -> dict[str, str]:
    """Run tags that select exactly this range of neighbouring periods."""
    if len(keys) == 1:
        return {"dagster/partition": keys[0]}
    return {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}


def by_period(upstream: dg.AssetKey | str) -> dict[str, Any]:
    """What every edition-level asset shares: the period partitions, a single run for any backfill, and
    reacting to updates of `upstream` (the period markers for the first layer)."""
    return {
        "partitions_def": publication_periods,
        "backfill_policy": dg.BackfillPolicy.single_run(),
        "automation_condition": on_updates_of(upstream),
    }


def works_in(editions: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    periods = work_periods(editions).filter(pl.col("period").is_in(keys))
    return editions.join(periods.select("work_id"), on="work_id", how="semi")


def partition_slice(
    editions: pl.DataFrame, inventory: pl.DataFrame | pl.LazyFrame, keys: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The editions and asset versions owned by these periods (a work and all its assets live in one).
    A lazy inventory is sliced as it is read, so only the periods' versions are ever in memory."""
    owned = works_in(editions, keys)
    versions = inventory.filter(
        pl.col("work_id").is_in(owned["work_id"].implode())
        | pl.col("isbn13").is_in(owned["isbn13"].implode())
    )
    return owned, versions.collect() if isinstance(versions, pl.LazyFrame) else versions


def version_slots(versions: pl.DataFrame) -> pl.DataFrame:
    """One row per asset version a DAM write considers: its id (the slot) and what a ledger event names."""
    return versions.select(
        pl.col("asset_id").alias("key"), "isbn13", "work_id", pl.col("asset_id").alias("dam_asset_id"),
        pl.col("version").alias("dam_version"), "role",
    )  # fmt: skip
