"""approved_version_links (F1, F8, F7 history), by period."""

from typing import Any

import dagster as dg
import polars as pl

from consodam_pipeline.audit import live_links
from consodam_pipeline.defs.editions import EDITION_CHANGES, by_period, partition_slice, work_periods
from consodam_pipeline.defs.links.history import LinkHistory, link_history_chunks
from consodam_pipeline.defs.links.vanished import closing_events, linked_assets
from consodam_pipeline.store.lineage import utcnow
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.store.tables import PARTITION_COLUMN
from consodam_pipeline.sync.report import (
    EDITION_KEY_COLUMNS,
    VERSION_COLUMNS,
    VERSIONS,
    column_lineage,
    summary_markdown,
)

AGREEMENT_SAMPLE = 200
# The inventory columns the link history reads (the renditions, tags and restrictions stay on disk).
LINK_INPUTS = ["asset_id", "original_asset_id", "version", "role", "isbn13", "work_id", "approval_status",
               "approved_by", "approved_at", "approval_history", "orphan_tag"]  # fmt: skip
LINK_LINEAGE: dict[str, dict[str, list[str]]] = {
    **EDITION_KEY_COLUMNS,
    **VERSION_COLUMNS,
    "resource_content_type": {VERSIONS: ["role"]},
    "scope": {VERSIONS: ["isbn13", "work_id"]},
    "linked_since": {VERSIONS: ["approved_at", "approval_history"]},
}


@dg.asset(
    **by_period(EDITION_CHANGES),
    deps=[EDITION_CHANGES],
    check_specs=[
        dg.AssetCheckSpec("links_point_to_approved_versions", asset="approved_version_links", blocking=True),
        dg.AssetCheckSpec("one_live_link_per_role", asset="approved_version_links", blocking=True),
        dg.AssetCheckSpec("ledger_agrees_with_links", asset="approved_version_links", blocking=True),
    ],
    group_name="links",
    kinds={"polars"},
    description="Edition × role → the approved DAM asset version linked to it (rules: domain/links.py). "
    "Also rebuilds the link and approval history from the DAM's approval records into the audit ledger, so "
    "a backfill of every period gives an onboarding publisher its past audit trail. Replays add nothing.",
)
def approved_version_links(  # type: ignore[no-untyped-def]  # an annotation would be read as the output's type
    context: dg.AssetExecutionContext,
    title_metadata_snapshot: pl.DataFrame,
    dam_asset_inventory: pl.LazyFrame,
    lineage: LineageStoreResource,
):
    keys = list(context.partition_keys)
    editions, versions = partition_slice(
        title_metadata_snapshot, dam_asset_inventory.select(LINK_INPUTS), keys
    )
    store = lineage.store()
    derived = new_events = 0
    current: list[pl.DataFrame] = [LinkHistory().current]
    changes: list[pl.DataFrame] = [LinkHistory().events]
    isbns = editions["isbn13"].to_list()
    with store.engine.begin() as conn:  # one transaction: a killed backfill leaves nothing half-written
        # Asked before the appends: a first backfill finds nothing, at no cost, whatever it adds next.
        linked = linked_assets(conn, isbns)
        with store.ledger_backfill(conn, editions.height):
            for part in link_history_chunks(editions, versions, context.run.run_id):
                new_events += store.append_events(conn, part.events)
                derived += part.events.height
                current.append(part.current)
                created = part.events.filter(pl.col("event_type") == "link_created")
                linked.update(created["dam_asset_id"].drop_nulls().to_list())
                changes.append(created.top_k(10, by="occurred_at"))
        closed = closing_events(
            conn,
            isbns,
            pl.concat(current),
            dam_asset_inventory.select("asset_id").collect()["asset_id"],
            linked,
            utcnow(),
            context.run.run_id,
        )
        new_events += store.append_events(conn, closed)
    recent = pl.concat(changes).top_k(10, by="occurred_at").sort("occurred_at", descending=True)
    links = pl.concat(current).join(work_periods(editions), on="work_id", how="left")
    return dg.MaterializeResult(
        value=links.rename({"period": PARTITION_COLUMN}),
        check_results=[
            links_are_approved(links, versions),
            one_link_per_role(links),
            ledger_agrees(store, links),
        ],
        metadata={
            "dagster/row_count": links.height,
            "dagster/column_lineage": column_lineage(LINK_LINEAGE, links.columns),
            "partitions": len(keys),
            "events_derived": derived,
            "events_new_in_ledger": new_events,
            "links_closed_version_deleted": sum(e.event_type == "link_superseded" for e in closed),
            "latest_link_changes": dg.MetadataValue.md(
                "| when | ISBN | role | version | approved by |\n|---|---|---|---|---|\n"
                + "\n".join(
                    f"| {e['occurred_at']:%Y-%m-%d %H:%M} | {e['isbn13']} | {e['role']} | "
                    f"{(e['dam_asset_id'] or '')[:10]} v{e['dam_version']} | {e['actor']} |"
                    for e in recent.iter_rows(named=True)
                )
            ),
            "summary": summary_markdown(
                "Approved version links",
                [
                    ("links", links.height),
                    ("events derived", derived),
                    ("new in ledger", new_events),
                ],
            ),
        },
    )


def links_are_approved(links: pl.DataFrame, versions: pl.DataFrame) -> dg.AssetCheckResult:
    approved = versions.filter((pl.col("approval_status") == "approved") & ~pl.col("orphan_tag"))
    dangling = links.join(approved.select("asset_id"), on="asset_id", how="anti")
    return dg.AssetCheckResult(
        check_name="links_point_to_approved_versions",
        passed=dangling.height == 0,
        metadata={"links": links.height, "not_an_existing_approved_version": dangling.height},
    )


def one_link_per_role(links: pl.DataFrame) -> dg.AssetCheckResult:
    doubled = links.filter(pl.struct("product_id", "role").is_duplicated())
    return dg.AssetCheckResult(
        check_name="one_live_link_per_role",
        passed=doubled.height == 0,
        metadata={"duplicates": doubled.height},
    )


def ledger_agrees(store: Any, links: pl.DataFrame) -> dg.AssetCheckResult:
    """For a sample of editions, the live links the ledger answers equal the links computed now."""
    sample = links.select("isbn13").unique().sort("isbn13").head(AGREEMENT_SAMPLE)["isbn13"].to_list()
    mismatches = []
    for isbn in sample:
        from_ledger = {
            r: (e["dam_asset_id"], e["dam_version"])
            for r, e in live_links(store.events_for_isbn(isbn)).items()
        }
        computed = {
            r["role"]: (r["asset_id"], r["version"])
            for r in links.filter(pl.col("isbn13") == isbn).iter_rows(named=True)
        }
        if from_ledger != computed:
            mismatches.append(isbn)
    return dg.AssetCheckResult(
        check_name="ledger_agrees_with_links",
        passed=not mismatches,
        metadata={
            "editions_compared": len(sample),
            "disagreeing": len(mismatches),
            "examples": ", ".join(mismatches[:5]) or "—",
        },
    )
