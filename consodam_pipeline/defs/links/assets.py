"""approved_version_links (F1, F8, F7 history) and consonance_asset_links (F1/F8 sync), by period."""

import json
from typing import Any

import dagster as dg
import polars as pl

from consodam_pipeline.audit import live_links
from consodam_pipeline.clients.consonance import ConsonanceResource
from consodam_pipeline.clients.opentext_dam import OpenTextDamResource
from consodam_pipeline.defs.dam.writes import state_hash, state_json
from consodam_pipeline.defs.editions import EDITION_CHANGES, by_period, work_periods
from consodam_pipeline.defs.links.history import LinkHistory, link_history_chunks
from consodam_pipeline.defs.rights.assets import partition_slice
from consodam_pipeline.store.lineage import AuditEvent, utcnow
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.store.tables import PARTITION_COLUMN
from consodam_pipeline.sync.report import summary_markdown

LINK_ENTITY = "consonance_link"
AGREEMENT_SAMPLE = 200


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
    dam_asset_inventory: pl.DataFrame,
    lineage: LineageStoreResource,
):
    keys = list(context.partition_keys)
    editions, versions = partition_slice(title_metadata_snapshot, dam_asset_inventory, keys)
    store = lineage.store()
    derived = new_events = 0
    current: list[pl.DataFrame] = [LinkHistory().current]
    changes: list[pl.DataFrame] = [LinkHistory().events]
    with store.engine.begin() as conn:  # one transaction: a killed backfill leaves nothing half-written
        for part in link_history_chunks(editions, versions, context.run.run_id):
            new_events += store.append_events(conn, part.events)
            derived += part.events.height
            current.append(part.current)
            changes.append(
                part.events.filter(pl.col("event_type") == "link_created").top_k(10, by="occurred_at")
            )
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
            "partitions": len(keys),
            "events_derived": derived,
            "events_new_in_ledger": new_events,
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


@dg.asset(
    **by_period("approved_version_links"),
    group_name="links",
    kinds={"consonance"},
    pool="consonance_api",
    description="Writes each link into the Consonance title record as a supporting resource (imageRemoteUrl "
    "= the DAM version's content URL). A newer approved version replaces the old resource; the old link stays "
    "in history. Idempotent: an existing resource with the same URL is adopted, not duplicated.",
)
def consonance_asset_links(
    context: dg.AssetExecutionContext,
    approved_version_links: pl.DataFrame,
    consonance: ConsonanceResource,
    dam: OpenTextDamResource,
    lineage: LineageStoreResource,
) -> dg.Output[pl.DataFrame]:
    store = lineage.store()
    links = approved_version_links.with_columns(
        pl.concat_str(pl.col("product_id").cast(pl.String), pl.lit("|"), pl.col("role")).alias("record_key")
    )
    written_before = store.open_versions(LINK_ENTITY, links["record_key"].to_list())
    last = {r["record_key"]: r["last_hash"] for r in written_before.iter_rows(named=True)}
    todo = [r for r in links.iter_rows(named=True) if last.get(r["record_key"]) != link_hash(r)]
    results = write_links(consonance, dam.url, store, todo, context.run.run_id)
    report = links.with_columns(
        pl.col("record_key").is_in(pl.Series([r["record_key"] for r in results], dtype=pl.String).implode())
        .alias("written")
    )  # fmt: skip
    return dg.Output(
        report,
        metadata={
            "dagster/row_count": report.height,
            "written": len(results),
            "already_linked": report.height - len(todo),
            "summary": summary_markdown(
                "Consonance asset links", [("links", report.height), ("written", len(results))]
            ),
        },
    )


def link_hash(row: dict[str, Any]) -> str:
    return state_hash(state_json({"asset_id": row["asset_id"], "version": row["version"]}))


def write_links(
    consonance: ConsonanceResource, dam_url: str, store: Any, todo: list[dict[str, Any]], run_id: str
) -> list[dict[str, Any]]:
    """Create (or adopt) the supporting resource for each link, delete the one it replaces, record both."""
    if not todo:
        return []
    done: list[dict[str, Any]] = []
    with consonance.client() as client:
        existing = resources_by_product(client, sorted({r["isbn13"] for r in todo}))
        payloads = store.open_payload_map(LINK_ENTITY, [r["record_key"] for r in todo])
        old = {key: json.loads(payload) for key, payload in payloads.items()}
        for row in todo:
            url = f"{dam_url}/otmmapi/v6/assets/{row['asset_id']}/contents"
            match = next((s for s in existing.get(row["product_id"], []) if s["imageRemoteUrl"] == url), None)
            if match is None:
                created = client.create_supporting_resource(
                    productIds=[row["product_id"]], resourceContentType=row["resource_content_type"],
                    imageRemoteUrl=url, caption=f"{row['role']} v{row['version']}",
                    filename=f"{row['asset_id']}-v{row['version']}",
                )  # fmt: skip
                if created["errors"]:
                    continue
                match = created["supportingResource"]
            replaced = old.get(row["record_key"])
            if replaced and replaced.get("resource_id") not in (None, match["id"]):
                client.delete_supporting_resource(int(replaced["resource_id"]))
            done.append({**row, "resource_id": match["id"], "replaced": replaced})
    now = utcnow()
    records = pl.DataFrame({
        "record_key": [r["record_key"] for r in done],
        "content_hash": [link_hash(r) for r in done],
        "payload": [state_json({"asset_id": r["asset_id"], "version": r["version"], "resource_id": r["resource_id"]})
                    for r in done],
    }, schema={"record_key": pl.String, "content_hash": pl.String, "payload": pl.String})  # fmt: skip
    events = [
        AuditEvent(
            event_type="link_written",
            occurred_at=now,
            isbn13=r["isbn13"],
            work_id=str(r["work_id"]),
            dam_asset_id=r["asset_id"],
            dam_version=r["version"],
            role=r["role"],
            actor="consodam",
            before=r["replaced"],
            after={"resource_id": r["resource_id"], "asset_id": r["asset_id"]},
            run_id=run_id,
            identity=f"{r['record_key']}|{(r['replaced'] or {}).get('resource_id')}|{r['resource_id']}",
        )
        for r in done
    ]
    with store.engine.begin() as conn:
        store.apply_snapshot(conn, LINK_ENTITY, records, observed_at=now, complete=False, run_id=run_id)
        store.append_events(conn, events)
    return done


def resources_by_product(client: Any, isbns: list[str]) -> dict[int, list[dict[str, Any]]]:
    found: dict[int, list[dict[str, Any]]] = {}
    for start in range(0, len(isbns), 100):
        data = client.graphql(
            "query($i: [String!]) { products(productSearch: {isbn13In: $i}, limit: 1000) { id work {"
            " supportingResources { id productIds imageRemoteUrl } } } }",
            {"i": isbns[start : start + 100]},
        )
        for product in data["products"]:
            found[product["id"]] = [
                s for s in product["work"]["supportingResources"] if product["id"] in s["productIds"]
            ]
    return found
