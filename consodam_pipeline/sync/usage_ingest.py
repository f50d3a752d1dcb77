"""The DAM's usage log (where a version was used: channel, by whom, when) read past its cursor and appended
to the lineage store, each entry attributed to its version's edition or work through the inventory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from consodam_pipeline.clients.dam_models import UsageRow
from consodam_pipeline.clients.opentext_dam import OpenTextDamResource
from consodam_pipeline.domain.timestamps import parse_ts, to_naive_utc
from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.sync.report import summary_markdown

USAGE_CURSOR = "dam.usage.after"
USAGE_PAGE = 1000
USAGE_COLUMNS: dict[str, pl.DataType] = {
    "usage_id": pl.String(),
    "asset_id": pl.String(),
    "used_by": pl.String(),
    "channel": pl.String(),
    "action": pl.String(),
    "used_at": pl.Datetime("us"),
}


def usage_rows(rows: list[UsageRow], inventory: pl.LazyFrame, run_id: str) -> pl.DataFrame:
    """Usage entries attributed to their version's edition (or work) through the inventory."""
    entries = [
        (f"dam:{r.seq}", r.asset_id, r.used_by, r.channel, r.action, to_naive_utc(parse_ts(r.used_at)))
        for r in rows
    ]
    frame = pl.DataFrame(entries, schema=USAGE_COLUMNS, orient="row")
    owners = (
        inventory.select(
            "asset_id",
            pl.col("version").alias("dam_version"),
            "role",
            "isbn13",
            pl.col("work_id").cast(pl.String),
        )
        .filter(pl.col("asset_id").is_in(frame["asset_id"].implode()))
        .collect()
    )
    return frame.join(owners, on="asset_id", how="left").with_columns(pl.lit(run_id).alias("run_id"))


@dataclass
class UsageRead:
    frame: pl.DataFrame
    added: int
    first: int
    last: int


def ingest_usage(
    dam: OpenTextDamResource, store: LineageStore, inventory: pl.LazyFrame, run_id: str
) -> UsageRead:
    """Every usage entry past the cursor, appended with the cursor in one transaction (a replay adds nothing:
    each row is named by the DAM's own sequence number)."""
    with store.locks.holding(["ingest:asset_usage"]):
        return _ingest_usage(dam, store, inventory, run_id)


def _ingest_usage(
    dam: OpenTextDamResource, store: LineageStore, inventory: pl.LazyFrame, run_id: str
) -> UsageRead:
    after = first = int(store.cursors.get(USAGE_CURSOR) or 0)
    read: list[UsageRow] = []
    with dam.client() as client:
        while page := client.usage_page(after, USAGE_PAGE):
            read += page
            after = page[-1].seq
    frame = usage_rows(read, inventory, run_id)
    with store.engine.begin() as conn:
        added = store.usage.append(conn, frame)
        store.cursors.set(conn, USAGE_CURSOR, str(after), run_id)
    return UsageRead(frame, added, first, after)


def usage_metadata(read: UsageRead) -> dict[str, Any]:
    frame = read.frame
    unattributed = frame.filter(pl.col("isbn13").is_null() & pl.col("work_id").is_null()).height
    by_channel = {str(k): int(v) for k, v in frame.group_by("channel").len().iter_rows()}
    summary = [
        ("entries read", frame.height),
        ("added", read.added),
        ("from / to", f"{read.first} / {read.last}"),
    ]
    return {
        "read": frame.height,
        "added": read.added,
        "not_yet_in_inventory": unattributed,
        "log_position": read.last,
        "by_channel": by_channel,
        "summary": summary_markdown("DAM usage log", summary),
    }
