"""consonance_asset_links (F1, F8 sync): each live link as a supporting resource on its Consonance edition.

A newer approved version replaces the resource (the old link stays in history); a link that is no longer
live (its version rejected, revoked or deleted, or its edition gone) is removed from Consonance with a
`link_removed` event saying why. Everything goes through the write engine (sync/engine.py).
"""

import json

import dagster as dg
import polars as pl

from consodam_pipeline.clients.consonance import ConsonanceResource
from consodam_pipeline.clients.opentext_dam import OpenTextDamResource
from consodam_pipeline.defs.editions import by_period, work_periods, works_in
from consodam_pipeline.domain.roles import MARKETING_ROLES
from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.store.tables import PARTITION_COLUMN
from consodam_pipeline.sync.consonance_resources import (
    SupportingResourceTarget,
    asset_in_url,
    product_of,
    reference_state,
    slot_key,
)
from consodam_pipeline.sync.engine import Found, found_frame, frame_context, state_json, sync
from consodam_pipeline.sync.report import write_metadata, write_report, writes_check_spec

LINK_ENTITY = "consonance_link"
ROLES = MARKETING_ROLES  # the slots a product can have links in


def link_target(dam_url: str, editions: pl.DataFrame, inventory: pl.DataFrame) -> SupportingResourceTarget:
    roles = dict(inventory.select("asset_id", "role").iter_rows())
    return SupportingResourceTarget(
        entity=LINK_ENTITY,
        written_event="link_written",
        removed_event="link_removed",
        dam_url=dam_url,
        isbns=dict(editions.select("product_id", "isbn13").iter_rows()),
        slot_of=lambda _product, asset_id: roles.get(asset_id, f"?{asset_id}"),
    )


def desired_links(links: pl.DataFrame, target: SupportingResourceTarget) -> pl.DataFrame:
    """key, state, and what a ledger event names, for every live link."""
    return links.select(
        pl.format("{}|{}", "product_id", "role").alias("key"),
        pl.struct("role", "version", "resource_content_type", "asset_id")
        .map_elements(
            lambda r: reference_state(f"{r['role']} v{r['version']}", r["resource_content_type"],
                                     target.content_url(r["asset_id"])),
            return_dtype=pl.String,
        ).alias("state"),
        "isbn13", "work_id", pl.col("asset_id").alias("dam_asset_id"), pl.col("version").alias("dam_version"),
        "role",
    )  # fmt: skip


def vanished(store: LineageStore, editions: pl.DataFrame) -> pl.DataFrame:
    """Found rows for links recorded on editions Consonance no longer has: removed by their stored id."""
    known = set(editions["product_id"].to_list())
    keys = [k for k in store.open_keys(LINK_ENTITY) if product_of(k) not in known]
    rows = []
    for key, payload in store.open_payload_map(LINK_ENTITY, keys).items():
        stored = json.loads(payload)
        handle = stored.get("handle") or stored.get("resource_id")  # older builds stored `resource_id`
        if handle is not None:
            rows.append(Found(key, str(handle), state_json(stored.get("state") or {})))
    return found_frame(rows)


def removal_reasons(
    keys: list[str], found: pl.DataFrame, store: LineageStore, editions: pl.DataFrame, inventory: pl.DataFrame
) -> tuple[dict[str, str], pl.DataFrame]:
    """Why each slot is no longer wanted, and which version it held (for the ledger)."""
    held = {k: asset_in_url(json.loads(s)["url"]) for k, s in found.select("key", "state").iter_rows()}
    for key, payload in store.open_payload_map(LINK_ENTITY, [k for k in keys if k not in held]).items():
        stored = json.loads(payload)
        held[key] = asset_in_url((stored.get("state") or {}).get("url")) or stored.get("asset_id")
    versions = {r["asset_id"]: r for r in inventory.select("asset_id", "version", "approval_status",
                                                            "orphan_tag").iter_rows(named=True)}  # fmt: skip
    products = set(editions["product_id"].to_list())
    reasons = {}
    for key in keys:
        version = versions.get(held.get(key) or "")
        if product_of(key) not in products:
            reasons[key] = "edition_gone"
        elif version is None:
            reasons[key] = "version_deleted"
        elif version["orphan_tag"]:
            reasons[key] = "version_untagged"
        elif version["approval_status"] == "rejected":
            reasons[key] = "version_rejected"
        elif version["approval_status"] != "approved":
            reasons[key] = "version_not_approved"
        else:
            reasons[key] = "no_longer_linked"
    removed = pl.DataFrame(
        [(k, held.get(k), (versions.get(held.get(k) or "") or {}).get("version")) for k in keys],
        schema={"key": pl.String, "dam_asset_id": pl.String, "dam_version": pl.Int64}, orient="row",
    )  # fmt: skip
    return reasons, removed


@dg.asset(
    **by_period("approved_version_links"),
    group_name="links",
    kinds={"consonance"},
    pool="consonance_api",
    check_specs=[writes_check_spec("consonance_asset_links")],
    description="Each live link as a supporting resource on its Consonance edition (imageRemoteUrl = the DAM "
    "version's content URL). A newer approved version replaces the resource; a link no longer live is "
    "removed with the reason. Converges every run: duplicates and hand edits are fixed and reported.",
)
def consonance_asset_links(  # type: ignore[no-untyped-def]  # an annotation would be read as the output's type
    context: dg.AssetExecutionContext,
    approved_version_links: pl.DataFrame,
    title_metadata_snapshot: pl.DataFrame,
    dam_asset_inventory: pl.DataFrame,
    consonance: ConsonanceResource,
    dam: OpenTextDamResource,
    lineage: LineageStoreResource,
):
    store = lineage.store()
    editions = works_in(title_metadata_snapshot, list(context.partition_keys))
    target = link_target(dam.url, title_metadata_snapshot, dam_asset_inventory)
    desired = desired_links(approved_version_links, target)
    with consonance.client() as client:
        found = pl.concat(
            [
                target.observe(client, editions["product_id"].to_list()),
                vanished(store, title_metadata_snapshot),
            ]
        )
        scope = sorted(
            {*found["key"].to_list(), *(slot_key(p, r) for p in editions["product_id"] for r in ROLES)}
        )
        unwanted = sorted(set(scope) - set(desired["key"].to_list()))
        reasons, removed = removal_reasons(
            unwanted, found, store, title_metadata_snapshot, dam_asset_inventory
        )
        slots = link_slots(scope, desired, removed, title_metadata_snapshot)
        result = sync(
            target, client, store, desired=desired.select("key", "state"), found=found, scope=scope,
            run_id=context.run.run_id, context=frame_context(slots), removal_reasons=reasons, log=context.log,
        )  # fmt: skip
    metadata, check = write_metadata("Consonance asset links", target, result, store)
    report = (
        write_report(result, slots)
        .filter(pl.col("action").is_not_null() | pl.col("dam_asset_id").is_not_null())
        .with_columns(pl.col(PARTITION_COLUMN).fill_null(context.partition_keys[0]))
    )
    return dg.MaterializeResult(value=report, metadata=metadata, check_results=[check])


def link_slots(
    scope: list[str], desired: pl.DataFrame, removed: pl.DataFrame, editions: pl.DataFrame
) -> pl.DataFrame:
    """Every slot considered, with what its ledger events name and the partition it belongs to."""
    periods = work_periods(editions)
    base = pl.DataFrame({"key": scope}, schema={"key": pl.String}).with_columns(
        pl.col("key").str.split("|").list.first().cast(pl.Int64).alias("product_id"),
        pl.col("key").str.split("|").list.last().alias("role"),
    )
    about = pl.concat([desired.drop("state", "role", "isbn13", "work_id"), removed], how="diagonal_relaxed")
    return (
        base.join(editions.select("product_id", "isbn13", "work_id"), on="product_id", how="left")
        .join(about.unique(subset="key", keep="first"), on="key", how="left")
        .join(periods.select("work_id", pl.col("period").alias(PARTITION_COLUMN)), on="work_id", how="left")
    )
