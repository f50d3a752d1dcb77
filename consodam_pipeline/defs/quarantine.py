"""The quarantine as an asset check result: how many records are held back, by kind, with examples."""

import dagster as dg
import polars as pl

from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.sync.report import quarantine_counts


def quarantine_check_result(lineage: LineageStoreResource, *sources: str) -> dg.AssetCheckResult:
    open_rows = lineage.store().open_quarantine()
    open_rows = open_rows.filter(pl.col("source").is_in(list(sources)))
    by_kind = quarantine_counts(open_rows["reason"].to_list())
    return dg.AssetCheckResult(
        passed=open_rows.height == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description="records held back from the snapshot until they are fixed at the source",
        metadata={
            "quarantined_records": open_rows["record_key"].n_unique(),
            "by_kind": by_kind,
            "examples": dg.MetadataValue.md(
                "\n".join(
                    f"- `{r['record_key']}`: {r['reason']}" for r in open_rows.head(10).iter_rows(named=True)
                )
                or "none"
            ),
        },
    )
