"""Writing metadata to the DAM idempotently: plan against what was observed and what we last wrote,
then lock → update → unlock, and record the writes (history + ledger) in one transaction.

An asset is written when its desired state differs from the one consodam last wrote, or when the DAM
shows a different state that is newer than that write (someone changed it by hand). An asset whose
observed state already is the desired one is only recorded. So a second run with no change writes
nothing, and a crash between the DAM write and the commit repeats the write (idempotent) next time.
"""

import hashlib
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl

from consodam_pipeline.clients.http import ApiError
from consodam_pipeline.clients.opentext_dam import DamClient
from consodam_pipeline.store.lineage import AuditEvent, LineageStore

LOCK_BATCH = 100


def state_json(values: dict[str, Any]) -> str:
    return json.dumps(values, sort_keys=True, separators=(",", ":"))


def state_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class WritePlan:
    """Rows: asset_id, version, work_id, isbn13, desired (JSON), observed (JSON), write (bool)."""

    rows: pl.DataFrame
    entity: str

    @property
    def to_write(self) -> pl.DataFrame:
        return self.rows.filter(pl.col("write"))


@dataclass
class WriteResult:
    written: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    adopted: int = 0


def plan_writes(store: LineageStore, entity: str, states: pl.DataFrame) -> WritePlan:
    """`states`: asset_id, version, work_id, isbn13, desired, observed, observed_at (DAM modified time)."""
    states = states.with_columns(
        pl.col("desired").map_batches(lambda s: pl.Series([state_hash(v) for v in s]), return_dtype=pl.String)
        .alias("desired_hash")
    )  # fmt: skip
    last = store.open_versions(entity, states["asset_id"].to_list())
    joined = states.join(last, left_on="asset_id", right_on="record_key", how="left")
    observed_at = (
        pl.col("observed_at").str.to_datetime(time_zone="UTC", strict=False).dt.replace_time_zone(None)
    )
    differs = pl.col("desired") != pl.col("observed")
    new_intent = pl.col("last_hash").is_null() | (pl.col("last_hash") != pl.col("desired_hash"))
    drifted = pl.col("last_at").is_not_null() & (observed_at > pl.col("last_at"))
    return WritePlan(joined.with_columns((differs & (new_intent | drifted)).alias("write")), entity)


def execute_writes(
    client: DamClient,
    plan: WritePlan,
    to_request: Callable[[dict[str, Any]], tuple[dict[str, Any], list[int] | None]],
    workers: int = 4,
) -> WriteResult:
    """Lock in batches, PATCH each (in parallel, bounded), always unlock. Failures are kept, not raised:
    they stay unwritten and are planned again next run."""
    result = WriteResult()
    desired = dict(plan.to_write.select("asset_id", "desired").rows())

    def write(asset_id: str) -> tuple[str, str | None]:
        values, policies = to_request(json.loads(desired[asset_id]))
        try:
            client.update_metadata(asset_id, values, security_policy_ids=policies)
        except ApiError as exc:
            return asset_id, str(exc)
        return asset_id, None

    ids = list(desired)
    for start in range(0, len(ids), LOCK_BATCH):
        batch = ids[start : start + LOCK_BATCH]
        with client.locked(batch) as held, ThreadPoolExecutor(max_workers=workers) as pool:
            for asset_id in set(batch) - set(held):
                result.failed[asset_id] = "locked by another user"
            for asset_id, error in pool.map(write, held):
                if error is None:
                    result.written.append(asset_id)
                else:
                    result.failed[asset_id] = error
    return result


def record_writes(
    store: LineageStore, plan: WritePlan, result: WriteResult, event_type: str, run_id: str
) -> int:
    """History of what we wrote (or adopted as already right) and one ledger event per write."""
    now = datetime.now(UTC)
    done = pl.Series(result.written, dtype=pl.String).implode()
    adopt = ~pl.col("write") & (
        pl.col("last_hash").is_null() | (pl.col("last_hash") != pl.col("desired_hash"))
    )
    settled = plan.rows.filter(pl.col("asset_id").is_in(done) | adopt)
    result.adopted = settled.height - len(result.written)
    records = settled.select(
        pl.col("asset_id").alias("record_key"), pl.col("desired_hash").alias("content_hash"),
        pl.col("desired").alias("payload"),
    )  # fmt: skip
    events = [
        AuditEvent(
            event_type=event_type,
            occurred_at=now,
            isbn13=row["isbn13"],
            work_id=None if row["work_id"] is None else str(row["work_id"]),
            dam_asset_id=row["asset_id"],
            dam_version=row["version"],
            before=json.loads(row["observed"]),
            after=json.loads(row["desired"]),
            run_id=run_id,
            identity=f"{row['asset_id']}|{row['last_hash']}|{state_hash(row['observed'])}|{row['desired_hash']}",
        )
        for row in plan.rows.filter(pl.col("asset_id").is_in(done)).iter_rows(named=True)
    ]
    with store.engine.begin() as conn:
        store.apply_snapshot(conn, plan.entity, records, observed_at=now, complete=False, run_id=run_id)
        return store.append_events(conn, events)


def write_report(
    plan: WritePlan, result: WriteResult, periods: pl.DataFrame, on: str = "work_id"
) -> pl.DataFrame:
    """One row per asset version considered: desired state, whether it was written, why it failed, and the
    partition it belongs to (`periods` maps `on` → period)."""
    written = pl.Series(result.written, dtype=pl.String).implode()
    failures = pl.DataFrame(
        {"asset_id": list(result.failed), "failure": list(result.failed.values())},
        schema={"asset_id": pl.String, "failure": pl.String},
    )
    return (
        plan.rows.select("asset_id", "version", "work_id", "isbn13", "desired", "write")
        .with_columns(pl.col("asset_id").is_in(written).alias("written"))
        .join(failures, on="asset_id", how="left")
        .join(periods.select(on, pl.col("period").alias("partition_key")), on=on, how="left")
    )


def write_metadata(title: str, report: pl.DataFrame, plan: WritePlan, result: WriteResult, events: int
                   ) -> dict[str, Any]:  # fmt: skip
    from consodam_pipeline.sync.report import summary_markdown

    return {
        "dagster/row_count": report.height,
        "planned_writes": plan.to_write.height,
        "written": len(result.written),
        "failed": len(result.failed),
        "already_right": result.adopted,
        "ledger_events": events,
        "failures": "\n".join(f"- `{a}`: {e}" for a, e in list(result.failed.items())[:10]) or "none",
        "summary": summary_markdown(
            title,
            [
                ("asset versions", report.height),
                ("written", len(result.written)),
                ("failed (planned again next run)", len(result.failed)),
                ("ledger events", events),
            ],
            [f"written: {', '.join(result.written[:5]) or '—'}"],
        ),
    }
