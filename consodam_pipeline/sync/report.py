"""What a materialization tells a person in the UI: counts, schema, what changed, a markdown summary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import polars as pl

from consodam_pipeline.store.history import SnapshotDiff
from consodam_pipeline.store.ledger import AuditEvent
from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.sync.plan import DUPLICATE, MANUAL, PERSISTENT_AFTER, REPLACED
from consodam_pipeline.sync.record import WriteResult
from consodam_pipeline.sync.target import WriteTarget

_DAGSTER_TYPES = {
    pl.String: "string",
    pl.Int64: "int",
    pl.Int32: "int",
    pl.UInt64: "int",
    pl.Boolean: "bool",
    pl.Date: "date",
    pl.Datetime: "datetime",
    pl.Float64: "float",
}


def column_schema(
    schema: Mapping[str, pl.DataType], descriptions: Mapping[str, str] | None = None
) -> dg.TableSchema:
    descriptions = descriptions or {}
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name, _DAGSTER_TYPES.get(dtype.base_type(), str(dtype)), description=descriptions.get(name)
            )
            for name, dtype in schema.items()
        ]
    )


def sample(keys: Sequence[str], n: int = 10) -> str:
    shown = ", ".join(keys[:n])
    return shown + (f" … (+{len(keys) - n})" if len(keys) > n else "") if keys else "—"


def diff_metadata(diff: SnapshotDiff) -> dict[str, Any]:
    return {
        "added": len(diff.added),
        "changed": len(diff.changed),
        "removed": len(diff.removed),
        "unchanged": diff.unchanged,
    }


def summary_markdown(
    title: str, rows: Sequence[tuple[str, Any]], notes: Sequence[str] = ()
) -> dg.MetadataValue:
    lines = [f"### {title}", "", "| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    if notes:
        lines += ["", *(f"- {n}" for n in notes)]
    return dg.MetadataValue.md("\n".join(lines))


def quarantine_counts(reasons: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for reason in reasons:
        kind = reason.split(":", 1)[0]
        counts[kind] = counts.get(kind, 0) + 1
    return counts


WRITES_CHECK = "writes_landed"


def writes_check_spec(asset: str) -> dg.AssetCheckSpec:
    return dg.AssetCheckSpec(
        WRITES_CHECK,
        asset=asset,
        description="Every planned write landed: WARN when items failed this run (they stay pending and are "
        "planned again), ERROR when an item has failed three runs in a row.",
    )


def write_report(result: WriteResult, slots: pl.DataFrame) -> pl.DataFrame:
    """One row per slot considered: the slot's columns (`key` and any context, the partition), and what
    was done there: action (create/update/delete/record, or none), why, whether it went through (`ok`),
    the error if not, and `written` (a create or update that landed)."""
    rows = [(o.action.key, o.action.kind, o.action.reason, o.ok, o.error) for o in result.outcomes] + [
        (k, "record", "found already right" if d.adopt else str(d.forget), True, None)
        for k, d in result.plan.decisions.items()
        if (d.adopt or d.forget) and not d.actions
    ]
    done = pl.DataFrame(
        rows,
        orient="row",
        schema={
            "key": pl.String,
            "action": pl.String,
            "reason": pl.String,
            "ok": pl.Boolean,
            "error": pl.String,
        },
    ).unique(subset="key", keep="first")
    missing = done.join(slots.select("key"), on="key", how="anti").select("key")
    return (
        pl.concat([slots, missing], how="diagonal_relaxed")
        .join(done, on="key", how="left")
        .with_columns(
            (pl.col("action").is_in(["create", "update"]) & pl.col("ok")).fill_null(False).alias("written")
        )
    )


def write_metadata(
    title: str, target: WriteTarget[Any], result: WriteResult, store: LineageStore
) -> tuple[dict[str, Any], dg.AssetCheckResult]:
    """What a write asset tells a person, and the writes_landed check, from the engine's result."""
    failed = result.failed
    pending = store.bookkeeping.failures(target.entity)
    persistent = pending.filter(pl.col("consecutive_runs") >= PERSISTENT_AFTER)
    figures = {
        "created": result.done("create"),
        "updated": result.done("update"),
        "removed": sum(
            1
            for o in result.outcomes
            if o.ok and o.action.kind == "delete" and o.action.reason not in (DUPLICATE, REPLACED)
        ),
        "replaced": result.done("delete", REPLACED),
        "duplicates_removed": result.done("delete", DUPLICATE),
        "manual_changes_overwritten": sum(1 for o in result.outcomes if o.ok and o.action.reason == MANUAL),
        "already_right": sum(1 for d in result.plan.decisions.values() if d.adopt and not d.actions),
        "unchanged": result.plan.unchanged,
        "failed": len(failed),
        "pending_failures": pending.height,
        "failing_3_runs_or_more": persistent.height,
        "ledger_events": result.events,
    }
    failures_md = "\n".join(f"- `{o.action.key}` ({o.action.kind}): {o.error}" for o in failed[:10]) or "none"
    metadata: dict[str, Any] = {
        **figures,
        "written": figures["created"] + figures["updated"],
        "failures": dg.MetadataValue.md(failures_md),
        "latest_changes": latest_changes(result.latest),
        "summary": summary_markdown(title, [(k.replace("_", " "), v) for k, v in figures.items()]),
    }
    check = dg.AssetCheckResult(
        check_name=WRITES_CHECK,
        passed=not failed and persistent.height == 0,
        severity=dg.AssetCheckSeverity.ERROR if persistent.height else dg.AssetCheckSeverity.WARN,
        metadata={
            "failed_this_run": len(failed),
            "pending": pending.height,
            "failing_3_runs_or_more": persistent.height,
            "persistent": dg.MetadataValue.md(
                "\n".join(
                    f"- `{r['record_key']}` ({r['consecutive_runs']} runs): {r['reason']}"
                    for r in persistent.head(10).iter_rows(named=True)
                )
                or "none"
            ),
        },
    )
    return metadata, check


def latest_changes(events: Sequence[AuditEvent]) -> dg.MetadataValue:
    """The newest ledger events a materialization made, as the audit trail shows them."""
    rows = [
        f"| {e.occurred_at:%Y-%m-%d %H:%M:%S} | {e.isbn13 or '—'} | {e.event_type} | {e.role or ''} | "
        f"{(e.dam_asset_id or '')[:10]}{f' v{e.dam_version}' if e.dam_version else ''} | {(e.run_id or '')[:8]} |"
        for e in sorted(events, key=lambda e: e.occurred_at, reverse=True)
    ]
    header = "| when (UTC) | ISBN | event | role | version | run |\n|---|---|---|---|---|---|\n"
    return dg.MetadataValue.md(header + "\n".join(rows) if rows else "no change this run")


def step_failure(event: Any) -> str:
    """The first line of a failed step's root cause: the errors wrapping it only say that a step failed."""
    error: Any = getattr(event.event_specific_data, "error", None)
    while getattr(error, "cause", None) is not None:
        error = error.cause
    lines = str(getattr(error, "message", "")).strip().splitlines()
    return lines[0] if lines else "step failed"


def add_counts(into: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata of several runs read as one: counts add up, anything else keeps the latest value."""
    for key, value in values.items():
        summable = isinstance(value, int) and not isinstance(value, bool) and isinstance(into.get(key), int)
        into[key] = into[key] + value if summable else value
    return into


TITLES = "title_metadata_snapshot"
VERSIONS = "dam_asset_inventory"


def column_lineage(
    sources: Mapping[str, Mapping[str, Sequence[str]]], columns: Sequence[str]
) -> dg.TableColumnLineage:
    """`dagster/column_lineage` for the columns a table has: column → {upstream asset: its columns}."""
    return dg.TableColumnLineage(
        deps_by_column={
            column: [
                dg.TableColumnDep(asset_key=dg.AssetKey(asset), column_name=name)
                for asset, names in sources[column].items()
                for name in names
            ]
            for column in columns
            if column in sources
        }
    )


# The columns every edition-level table takes from the title record, and those from a DAM version.
EDITION_KEY_COLUMNS: dict[str, dict[str, list[str]]] = {
    c: {TITLES: [c]}
    for c in (
        "product_id",
        "isbn13",
        "work_id",
        "format_family",
        "imprint",
        "publication_date",
        "project_stage",
        "embargo_date",
    )
}
VERSION_COLUMNS: dict[str, dict[str, list[str]]] = {
    c: {VERSIONS: [c]}
    for c in ("asset_id", "original_asset_id", "version", "role", "approved_by", "approved_at")
}


def quarantine_check_result(store: LineageStore, *sources: str, check_name: str) -> dg.AssetCheckResult:
    """The quarantine as a check result: how many records are held back, by kind, with examples."""
    open_rows = store.quarantine.open().filter(pl.col("source").is_in(list(sources)))
    examples = "\n".join(
        f"- `{r['record_key']}`: {r['reason']}" for r in open_rows.head(10).iter_rows(named=True)
    )
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=open_rows.height == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description="records held back from the snapshot until they are fixed at the source",
        metadata={
            "quarantined_records": open_rows["record_key"].n_unique(),
            "by_kind": quarantine_counts(open_rows["reason"].to_list()),
            "examples": dg.MetadataValue.md(examples or "none"),
        },
    )
