"""dam_usage_log: the DAM's usage log (downloads and deliveries of each version, by whom, through which
channel) ingested incrementally into the lineage store, so the audit answers "when was it used".

Like the other ingests, the cursor (the last log entry read) moves in the same transaction as the rows;
each row is named by the DAM's own sequence number, so a replay adds nothing. A row is attributed to its
edition (or its work, for a shared asset) through the inventory; one whose version the inventory does not
know yet is kept, and attributed by the audit through the asset id.
"""

import dagster as dg
import polars as pl

from consodam_pipeline.clients.opentext_dam import OpenTextDamResource, UsageRow
from consodam_pipeline.defs.probe import ProbeCursor, decide
from consodam_pipeline.domain.timestamps import parse_ts
from consodam_pipeline.store.lineage import to_naive_utc
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.sync.report import summary_markdown

USAGE_CURSOR = "dam.usage.after"
USAGE = dg.AssetKey("dam_usage_log")
PAGE = 1000


def usage_rows(rows: list[UsageRow], inventory: pl.LazyFrame, run_id: str) -> pl.DataFrame:
    frame = pl.DataFrame(
        [
            (f"dam:{r.seq}", r.asset_id, r.used_by, r.channel, r.action, to_naive_utc(parse_ts(r.used_at)))
            for r in rows
        ],
        schema={
            "usage_id": pl.String,
            "asset_id": pl.String,
            "used_by": pl.String,
            "channel": pl.String,
            "action": pl.String,
            "used_at": pl.Datetime("us"),
        },
        orient="row",
    )
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


@dg.asset(
    group_name="ingest",
    kinds={"opentext"},
    pool="dam_api",
    deps=["dam_asset_inventory"],
    description="The DAM's usage log (downloads and deliveries of each version, by whom, through which channel), "
    "read incrementally into the lineage store's asset_usage table; the audit answers when each version was used.",
)
def dam_usage_log(
    context: dg.AssetExecutionContext,
    dam: OpenTextDamResource,
    lineage: LineageStoreResource,
    dam_asset_inventory: pl.LazyFrame,
) -> dg.MaterializeResult:
    store = lineage.store()
    after = first = int(store.get_cursor(USAGE_CURSOR) or 0)
    read: list[UsageRow] = []
    with dam.client() as client:
        while page := client.usage_page(after, PAGE):
            read += page
            after = page[-1].seq
    frame = usage_rows(read, dam_asset_inventory, context.run.run_id)
    with store.engine.begin() as conn:
        new = store.append_usage(conn, frame)
        store.set_cursor(conn, USAGE_CURSOR, str(after), context.run.run_id)
    unattributed = frame.filter(pl.col("isbn13").is_null() & pl.col("work_id").is_null()).height
    by_channel = dict(frame.group_by("channel").len().iter_rows())
    return dg.MaterializeResult(
        metadata={
            "read": frame.height,
            "added": new,
            "not_yet_in_inventory": unattributed,
            "log_position": after,
            "by_channel": {str(k): int(v) for k, v in by_channel.items()},
            "summary": summary_markdown(
                "DAM usage log",
                [("entries read", frame.height), ("added", new), ("from / to", f"{first} / {after}")],
            ),
        }
    )


@dg.sensor(
    target=dg.AssetSelection.assets(USAGE),
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests dam_usage_log when the DAM's usage log has entries past what the lineage store holds.",
)
def dam_usage_sensor(
    context: dg.SensorEvaluationContext, dam: OpenTextDamResource, lineage: LineageStoreResource
) -> dg.SensorResult:
    after = int(lineage.store().get_cursor(USAGE_CURSOR) or 0)
    with dam.client() as client:
        waiting = client.usage_page(after, 200)
    changes = [(str(r.seq), r.used_at) for r in waiting]
    return decide(context, asset_key=USAGE, changes=changes, cursor=ProbeCursor.parse(context.cursor))
