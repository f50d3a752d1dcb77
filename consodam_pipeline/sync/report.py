"""What a materialization tells a person in the UI: counts, schema, what changed, a markdown summary."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import polars as pl

from consodam_pipeline.store.lineage import SnapshotDiff

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
