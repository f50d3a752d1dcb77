"""title_asset_packages (F5, F2's gate) for a slice of periods: the packages evaluated (packages.py), editions
whose stage or milestone the rules do not know quarantined, each edition's package state recorded in the
row history (so the audit answers it as of any date), and what the table tells a person and its checks."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import dagster as dg
import polars as pl

from consodam_pipeline.derived.packages import edition_summary, evaluate_packages, with_milestones
from consodam_pipeline.derived.packages_reference import package_disagreements
from consodam_pipeline.domain.packages import Rules
from consodam_pipeline.domain.periods import with_period
from consodam_pipeline.domain.timestamps import utcnow
from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.store.tables import PARTITION_COLUMN
from consodam_pipeline.sync.dam_ingest import VERSION_IDENTITY
from consodam_pipeline.sync.plan import state_hash
from consodam_pipeline.sync.report import (
    EDITION_KEY_COLUMNS,
    TITLES,
    VERSION_COLUMNS,
    VERSIONS,
    column_lineage,
    column_schema,
    summary_markdown,
)

PACKAGE_ENTITY = "title_package"
WORKFLOW_SOURCE = "workflow"
CHECK_SAMPLE = 300  # editions recomputed one by one by the blocking check
SOON = timedelta(days=90)
# The inventory columns a package evaluation reads (the rest, histories and tags, stay on disk).
PACKAGE_INPUTS = [
    *VERSION_IDENTITY,
    "approved_by",
    "approved_at",
    "mime_type",
    "width_px",
    "height_px",
    "colour_space",
    "page_count",
    "duration_s",
    "orphan_tag",
]
_APPROVAL = ["approval_status", "mime_type", "role"]
PACKAGE_LINEAGE: dict[str, dict[str, list[str]]] = {
    **EDITION_KEY_COLUMNS,
    **VERSION_COLUMNS,
    "status": {VERSIONS: _APPROVAL, TITLES: ["format_family"]},
    "detail": {VERSIONS: _APPROVAL},
    "requirement": {TITLES: ["format_family"]},
    "requirement_name": {TITLES: ["format_family"]},
    "milestone": {TITLES: ["project_stage"]},
    "needed": {TITLES: ["project_stage", "format_family"]},
}
PACKAGES = "title_asset_packages"
PACKAGE_CHECKS = [
    dg.AssetCheckSpec(
        "packages_follow_the_rules",
        asset=PACKAGES,
        blocking=True,
        description="A sample of editions recomputed one by one with the readable rules agrees: "
        "no stage advances or review task comes from a package table that disagrees with its rules.",
    ),
    dg.AssetCheckSpec(
        "milestones_waiting_on_assets",
        asset=PACKAGES,
        description="Editions at a gated milestone whose package is incomplete, and what each lacks.",
    ),
    dg.AssetCheckSpec(
        "packages_complete_before_publication",
        asset=PACKAGES,
        description="Editions publishing within 90 days whose package is incomplete.",
    ),
]


def title_packages(
    store: LineageStore,
    editions: pl.DataFrame,
    versions: pl.DataFrame,
    rules: Rules,
    run_id: str,
    periods: Sequence[str] = (),
) -> dg.MaterializeResult:
    """The slice's packages, recorded (the periods locked: two runs never open one record twice), with their
    checks and metadata."""
    with store.locks.holding([f"{PACKAGE_ENTITY}:{p}" for p in periods]):
        return _title_packages(store, editions, versions, rules, run_id)


def _title_packages(
    store: LineageStore, editions: pl.DataFrame, versions: pl.DataFrame, rules: Rules, run_id: str
) -> dg.MaterializeResult:
    quarantined = unknown_names(editions, rules)
    held_back = pl.Series([int(q[0]) for q in quarantined], dtype=pl.Int64).implode()
    quarantined_edition = pl.col("product_id").is_in(held_back)
    packages = with_milestones(evaluate_packages(editions, versions, rules), rules).with_columns(
        pl.when(quarantined_edition).then(None).otherwise(pl.col("milestone")).alias("milestone"),
        pl.col("needed") & ~quarantined_edition,
    )
    summary = edition_summary(packages)
    changed = record_packages(store, packages, quarantined, editions["product_id"].to_list(), run_id)
    return dg.MaterializeResult(
        value=with_period(packages, editions, PARTITION_COLUMN),
        check_results=[
            follows_the_rules(packages, editions, versions, rules),
            waiting_on_assets(summary),
            complete_before_publication(summary, datetime.now(UTC).date()),
        ],
        metadata=package_metadata(
            packages,
            summary.join(editions.select("product_id", "title"), on="product_id", how="left"),
            len(quarantined),
            changed,
        ),
    )


def unknown_names(editions: pl.DataFrame, rules: Rules) -> list[tuple[str, str, str]]:
    """(product id, reason, payload) for editions whose stage or milestone to-do the rules do not know."""
    rows = []
    stages = editions.filter(
        pl.col("project_stage").is_not_null() & ~pl.col("project_stage").is_in(rules.stages)
    )
    for row in stages.select("product_id", "isbn13", "project_stage").iter_rows(named=True):
        reason = f"unknown_stage: {row['project_stage']!r} is not a stage in the package rules"
        rows.append((str(row["product_id"]), reason, f'{{"isbn13": "{row["isbn13"]}"}}'))
    milestones = {m.name for m in rules.milestones}
    todos = (
        editions.select("product_id", "isbn13", "todos").explode("todos").drop_nulls("todos").unnest("todos")
    )
    for row in todos.filter(pl.col("milestone") & ~pl.col("name").is_in(list(milestones))).iter_rows(
        named=True
    ):
        reason = (
            f"unknown_milestone: to-do {row['name']!r} is flagged a milestone the package rules do not have"
        )
        rows.append((str(row["product_id"]), reason, f'{{"isbn13": "{row["isbn13"]}"}}'))
    return rows


def record_packages(
    store: LineageStore,
    packages: pl.DataFrame,
    quarantined: list[tuple[str, str, str]],
    product_ids: list[int],
    run_id: str,
) -> int:
    """Each edition's package state into row history (keyed by ISBN, as the audit asks), and the
    quarantine, in one transaction."""
    states = (
        packages.sort("isbn13", "requirement")
        .group_by("isbn13", maintain_order=True)
        .agg(
            pl.col("project_stage").first().alias("stage"),
            pl.col("milestone").first(),
            pl.struct("requirement", "status", "asset_id", "version", "detail").alias("requirements"),
        )
        .select(
            pl.col("isbn13").alias("record_key"),
            pl.struct("stage", "milestone", "requirements").struct.json_encode().alias("payload"),
        )
    )
    records = states.with_columns(
        pl.col("payload")
        .map_batches(lambda s: pl.Series([state_hash(t) for t in s]), return_dtype=pl.String)
        .alias("content_hash")
    )
    with store.engine.begin() as conn:
        diff = store.history.apply_snapshot(
            conn, PACKAGE_ENTITY, records, observed_at=utcnow(), complete=False, run_id=run_id
        )
        store.quarantine.hold(
            conn, WORKFLOW_SOURCE, quarantined, run_id=run_id, checked_keys=[str(p) for p in product_ids]
        )
    return len(diff.added) + len(diff.changed)


def follows_the_rules(
    packages: pl.DataFrame, editions: pl.DataFrame, versions: pl.DataFrame, rules: Rules
) -> dg.AssetCheckResult:
    problems = package_disagreements(packages, editions, versions, rules, CHECK_SAMPLE)
    return dg.AssetCheckResult(
        check_name="packages_follow_the_rules",
        passed=not problems,
        metadata={
            "editions_checked": min(editions.height, CHECK_SAMPLE),
            "disagreements": len(problems),
            "examples": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems[:10]) or "none"),
        },
    )


def _listing(rows: pl.DataFrame, column: str) -> dg.MetadataValue:
    lines = [
        f"- {r['isbn13']} ({r['format_family']}, {r['project_stage']}): {', '.join(r[column])}"
        for r in rows.head(15).iter_rows(named=True)
    ]
    return dg.MetadataValue.md("\n".join(lines) or "none")


def waiting_on_assets(summary: pl.DataFrame) -> dg.AssetCheckResult:
    waiting = summary.filter(pl.col("at_milestone") & (pl.col("needed_unmet") > 0)).sort("publication_date")
    return dg.AssetCheckResult(
        check_name="milestones_waiting_on_assets",
        passed=waiting.height == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "at_a_milestone": int(summary["at_milestone"].sum()),
            "held": waiting.height,
            "editions": _listing(waiting, "milestone_missing"),
        },
    )


def complete_before_publication(summary: pl.DataFrame, today: date) -> dg.AssetCheckResult:
    publishing = pl.col("publication_date").is_between(today, today + SOON)
    soon = summary.filter(publishing & (pl.col("met") < pl.col("requirements"))).sort("publication_date")
    return dg.AssetCheckResult(
        check_name="packages_complete_before_publication",
        passed=soon.height == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"publishing_within_90_days_incomplete": soon.height, "editions": _listing(soon, "missing")},
    )


def package_metadata(
    packages: pl.DataFrame, summary: pl.DataFrame, quarantined: int, changed: int
) -> dict[str, Any]:
    statuses = dict(packages.group_by("status").len().iter_rows())
    complete = int((summary["met"] == summary["requirements"]).sum())
    held = int((summary["at_milestone"] & (summary["needed_unmet"] > 0)).sum())
    return {
        "dagster/row_count": packages.height,
        "dagster/column_schema": column_schema(packages.schema),
        "dagster/column_lineage": column_lineage(PACKAGE_LINEAGE, packages.columns),
        "editions": summary.height,
        "complete_editions": complete,
        "completeness_pct": round(100 * complete / summary.height, 2) if summary.height else 100.0,
        "at_milestone": int(summary["at_milestone"].sum()),
        "held_at_milestone": held,
        "requirements_missing": int(statuses.get("missing", 0)),
        "requirements_failing_technical": int(statuses.get("fails_technical", 0)),
        "requirements_in_review": int(statuses.get("in_review", 0)),
        "quarantined": quarantined,
        "package_states_changed": changed,
        "completeness_by_format_and_imprint": completeness_table(summary),
        "furthest_from_complete": furthest_table(summary),
        "summary": summary_markdown(
            "Title packages",
            [("editions", summary.height), ("complete", complete), ("held at a milestone", held)],
        ),
    }


def completeness_table(summary: pl.DataFrame) -> dg.MetadataValue:
    by_format = (
        summary.group_by("format_family", "imprint")
        .agg(
            pl.len().alias("editions"),
            (pl.col("met") == pl.col("requirements")).sum().alias("complete"),
            pl.col("completeness").mean().alias("share"),
        )
        .sort("format_family", "imprint")
    )
    rows = [
        f"| {r['format_family']} | {r['imprint']} | {r['editions']} | {r['complete']} | {100 * r['share']:.0f}% |"
        for r in by_format.iter_rows(named=True)
    ]
    header = "| format | imprint | editions | complete | mean completeness |\n|---|---|---|---|---|\n"
    return dg.MetadataValue.md(header + "\n".join(rows))


def furthest_table(summary: pl.DataFrame) -> dg.MetadataValue:
    furthest = summary.sort("completeness", "publication_date", nulls_last=True).head(10)
    rows = [
        f"| {r['isbn13']} | {r.get('title') or ''} | {r['format_family']} | {r['met']}/{r['requirements']} | "
        f"{', '.join(r['missing'])} |"
        for r in furthest.iter_rows(named=True)
    ]
    header = "| ISBN | title | format | met | lacks |\n|---|---|---|---|---|\n"
    return dg.MetadataValue.md(header + "\n".join(rows))
