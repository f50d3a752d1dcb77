"""dam_review_tasks (F2) for a slice of periods: for each title at a milestone (after this run's advances), one
review task per required version awaiting a decision and one request per required asset that is missing,
rejected or fails a technical requirement; why each task no longer wanted is moot."""

from __future__ import annotations

import polars as pl

from consodam_pipeline.domain.packages import Rules
from consodam_pipeline.domain.periods import versions_of
from consodam_pipeline.store.tables import PARTITION_COLUMN
from consodam_pipeline.sync.workflow_targets import ReviewTaskTarget, request_key, review_key, task_state

WANTED_SCHEMA: dict[str, pl.DataType] = {
    "key": pl.String(),
    "state": pl.String(),
    "note": pl.String(),
    "isbn13": pl.String(),
    "work_id": pl.Int64(),
    "dam_asset_id": pl.String(),
    "dam_version": pl.Int64(),
    "role": pl.String(),
    PARTITION_COLUMN: pl.String(),
}


def wanted_tasks(packages: pl.DataFrame, stages: dict[int, str | None], rules: Rules) -> pl.DataFrame:
    """key, state, note, isbn13, and what the ledger names, for every task a title at a milestone needs."""
    rows = []
    for row in packages.iter_rows(named=True):
        milestone = rules.milestone_at(stages.get(row["product_id"]))
        if milestone is None or row["status"] == "approved":
            continue
        if row["requirement"] not in {r.id for r in rules.needed(row["format_family"], milestone)}:
            continue
        review = row["status"] == "in_review"
        if review:
            key = review_key(row["asset_id"], milestone.name)
            state = task_state("review", milestone.name, asset_id=row["asset_id"])
        else:
            key = request_key(row["isbn13"], milestone.name, row["requirement"])
            state = task_state("request", milestone.name, isbn=row["isbn13"], requirement=row["requirement"])
        note = f"{milestone.name} needs {row['requirement_name']}: {row['detail']}"
        asset, version = (row["asset_id"], row["version"]) if review else (None, None)
        rows.append(
            (
                key,
                state,
                note,
                row["isbn13"],
                row["work_id"],
                asset,
                version,
                row["requirement"],
                row[PARTITION_COLUMN],
            )
        )
    return pl.DataFrame(rows, orient="row", schema=WANTED_SCHEMA).unique(
        "key", keep="first", maintain_order=True
    )


def task_reasons(
    keys: list[str], wanted: pl.DataFrame, packages: pl.DataFrame, stages: dict[int, str | None], rules: Rules
) -> dict[str, str]:
    """Why each task of these that is no longer wanted is moot."""
    wanted_keys = set(wanted["key"].to_list())
    by_asset = {r["asset_id"]: r for r in packages.iter_rows(named=True) if r["asset_id"]}
    by_requirement = {(r["isbn13"], r["requirement"]): r for r in packages.iter_rows(named=True)}
    reasons = {}
    for key in (k for k in keys if k not in wanted_keys):
        kind, subject, milestone, *rest = key.split("|")
        row = (
            by_asset.get(subject)
            if kind == "review"
            else by_requirement.get((subject, rest[0] if rest else ""))
        )
        current = rules.milestone_at(stages.get(row["product_id"])) if row else None
        if row is None:
            reasons[key] = "version_superseded_or_deleted" if kind == "review" else "edition_gone"
        elif current is None or current.name != milestone:
            reasons[key] = "title_left_the_milestone"
        else:
            reasons[key] = f"requirement_{row['status']}"
    return reasons


def task_target(
    packages: pl.DataFrame, stages: pl.DataFrame, inventory: pl.DataFrame, rules: Rules
) -> tuple[ReviewTaskTarget, pl.DataFrame]:
    """The review task target for these periods' packages and stages after this run's advances, and the
    tasks wanted (key, state)."""
    stage_after = dict(stages.select("product_id", "stage_after").iter_rows())
    wanted = wanted_tasks(packages, stage_after, rules)
    editions = packages.select("isbn13", "work_id", "product_id").unique("isbn13")
    periods = packages.select("work_id", pl.col(PARTITION_COLUMN).alias("period")).unique("work_id")
    target = ReviewTaskTarget(
        wanted=wanted,
        versions=versions_of(inventory, editions),
        editions=editions.join(periods, on="work_id", how="left"),
        moot=lambda keys: task_reasons(list(keys), wanted, packages, stage_after, rules),
    )
    return target, wanted.select("key", "state")
