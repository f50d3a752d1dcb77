"""launch_collections (F6): as publication nears, each launching edition's title sheet and its approved,
rights-cleared versions in the DAM launch collection of its month and imprint, kept true every run.

Two passes through the write engine: the title sheets (imported once, versioned when the title data
changes), then the collection memberships (the sheet's newest version and every cleared linked version).
A member that is no longer wanted is removed with the reason: a newer version linked, a rejection, rights
that no longer allow it, a publication date moved out of the window, a withdrawn edition.
"""

from datetime import UTC, datetime
from typing import Any

import dagster as dg
import polars as pl

from consodam_pipeline.clients.opentext_dam import OpenTextDamResource
from consodam_pipeline.defs.editions import on_updates_of, publication_periods, work_periods, works_in
from consodam_pipeline.defs.launch.plan import launch_plan, title_sheets, wanted_members
from consodam_pipeline.defs.tags.assets import tag_fields
from consodam_pipeline.defs.workflow.assets import rules_in_force
from consodam_pipeline.domain.launch import NOT_LAUNCHED
from consodam_pipeline.store.lineage import AuditEvent, LineageStore, utcnow
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.store.tables import PARTITION_COLUMN
from consodam_pipeline.sync.dam_launch import (
    CollectionMemberTarget,
    TitleSheetTarget,
    member_key,
    members,
    sheet_sha,
    sheet_state,
)
from consodam_pipeline.sync.engine import WriteResult, frame_context, sync
from consodam_pipeline.sync.report import add_counts, write_metadata, write_report, writes_check_spec

LAUNCH_INPUTS = [
    "asset_id",
    "version",
    "role",
    "isbn13",
    "work_id",
    "approval_status",
    "mime_type",
    "width_px",
    "height_px",
    "name",
    "orphan_tag",
]


@dg.asset(
    partitions_def=publication_periods,
    backfill_policy=dg.BackfillPolicy.single_run(),
    automation_condition=on_updates_of("approved_version_links", "rights_matrix", "title_asset_packages"),
    group_name="launch",
    kinds={"opentext"},
    pool="dam_api",
    check_specs=[writes_check_spec("launch_collections")],
    description="For each edition in the launch window (90 days before publication to 30 after, not cancelled or "
    "withdrawn): its ONIX 3.0 title sheet and its approved, rights-cleared linked versions in the DAM collection "
    "'Launch <month> · <imprint>'; kept true as links, rights, dates and statuses change.",
)
def launch_collections(  # type: ignore[no-untyped-def]  # an annotation would be read as the output's type
    context: dg.AssetExecutionContext,
    title_metadata_snapshot: pl.DataFrame,
    approved_version_links: pl.DataFrame,
    rights_matrix: pl.DataFrame,
    title_asset_packages: pl.DataFrame,
    dam_asset_inventory: pl.LazyFrame,
    dam: OpenTextDamResource,
    lineage: LineageStoreResource,
):
    rules, store, run_id = rules_in_force(), lineage.store(), context.run.run_id
    editions = works_in(title_metadata_snapshot, list(context.partition_keys))
    versions = (
        dam_asset_inventory.select(LAUNCH_INPUTS)
        .filter(
            pl.col("isbn13").is_in(editions["isbn13"].implode())
            | pl.col("work_id").is_in(editions["work_id"].implode())
        )
        .collect()
    )
    plan = launch_plan(
        editions,
        approved_version_links,
        rights_matrix,
        title_asset_packages,
        rules.launch,
        datetime.now(UTC).date(),
    )
    launching, missing, cleared = plan.launching, plan.missing, plan.cleared
    sheet_target = TitleSheetTarget()
    with dam.client() as client:
        content_url = lambda asset_id: f"{dam.url.rstrip('/')}/otmmapi/v6/assets/{asset_id}/contents"  # noqa: E731
        xml = title_sheets(plan, versions, content_url)
        sheet_target.sheets, sheet_target.tags = xml, tag_fields(plan.launching)
        sheets = publish_sheets(sheet_target, client, store, xml, editions, run_id, context)
        newest = dict(
            sheet_target.observe(client, editions["isbn13"].to_list()).select("key", "handle").iter_rows()
        )
        every_sheet = set(sheet_versions(client, editions))
        member_target = CollectionMemberTarget()
        found = member_target.observe(client, set(versions["asset_id"].to_list()) | every_sheet)
        wanted = wanted_members(launching, cleared, newest)
        reasons = removal_reasons(
            found["key"].to_list(), wanted, launching, cleared, versions, editions, every_sheet
        )
        slots = member_slots(wanted, found["key"].to_list(), cleared, versions, editions, newest)
        result = sync(
            member_target,
            client,
            store,
            desired=members(wanted),
            found=found,
            scope=found["key"].to_list(),
            run_id=run_id,
            context=frame_context(slots),
            removal_reasons=reasons,
            log=context.log,
        )
    flagged = flag_incomplete(store, missing, launching, run_id)
    metadata, check = write_metadata("Launch collections", member_target, result, store)
    sheet_meta, _ = write_metadata("Title sheets", sheet_target, sheets, store)
    metadata |= {
        f"title_sheets_{k}": v for k, v in sheet_meta.items() if k in ("created", "updated", "failed")
    }
    metadata |= {
        "editions_launching": launching.height,
        "collections": launching["collection"].n_unique(),
        "flagged_incomplete": flagged,
        "held_incomplete": plan.held,
        "members_wanted": len(wanted),
    }
    check = merged_check(check, sheets, metadata)
    report = write_report(result, slots).with_columns(
        pl.col(PARTITION_COLUMN).fill_null(context.partition_keys[0])
    )
    return dg.MaterializeResult(value=report, metadata=metadata, check_results=[check])


def publish_sheets(
    target: TitleSheetTarget,
    client: Any,
    store: LineageStore,
    xml: dict[str, str],
    editions: pl.DataFrame,
    run_id: str,
    context: dg.AssetExecutionContext,
) -> WriteResult:
    desired = pl.DataFrame(
        {"key": list(xml), "state": [sheet_state(sheet_sha(x)) for x in xml.values()]},
        schema={"key": pl.String, "state": pl.String},
    )
    found = target.observe(client, xml)
    slots = editions.select(pl.col("isbn13").alias("key"), "isbn13", "work_id").with_columns(
        pl.lit("title_sheet").alias("role")
    )
    return sync(
        target,
        client,
        store,
        desired=desired,
        found=found,
        scope=[],
        run_id=run_id,
        context=frame_context(slots),
        log=context.log,
    )


def sheet_versions(client: Any, editions: pl.DataFrame) -> list[str]:
    """Every version of this period's title sheets (older ones may still sit in a collection)."""
    from consodam_pipeline.clients.opentext_dam import FIELD, condition

    isbns = set(editions["isbn13"].to_list())
    sheets = client.search([condition(FIELD + "ROLE", "title_sheet")], all_versions=True)
    return [a.asset_id for a in sheets if a.fields().get(FIELD + "ISBN") in isbns]


def removal_reasons(
    keys: list[str],
    wanted: list[tuple[str, str]],
    launching: pl.DataFrame,
    cleared: pl.DataFrame,
    versions: pl.DataFrame,
    editions: pl.DataFrame,
    sheets: set[str],
) -> dict[str, str]:
    """Why each member that should not be there is removed."""
    kept = {member_key(c, a) for c, a in wanted}
    linked = {a: allowed for a, allowed in cleared.select("asset_id", "allowed").iter_rows()}
    status = dict(versions.select("asset_id", "approval_status").iter_rows())
    owners = versions.select("asset_id", "isbn13", "work_id")
    launching_isbns, launching_works = set(launching["isbn13"]), set(launching["work_id"])
    withdrawn = set(editions.filter(pl.col("publishing_status").is_in(list(NOT_LAUNCHED)))["isbn13"])
    reasons = {}
    for key in (k for k in keys if k not in kept):
        asset = key.rsplit("|", 1)[1]
        owner = owners.filter(pl.col("asset_id") == asset).row(0, named=True) if asset in status else {}
        isbn, work = owner.get("isbn13"), owner.get("work_id")
        in_window = (isbn in launching_isbns) if isbn else (work in launching_works)
        if asset in sheets and in_window:
            reasons[key] = "title_sheet_updated"
        elif not in_window:
            reasons[key] = "edition_withdrawn" if isbn in withdrawn else "left_the_launch_window"
        elif asset in linked and not linked[asset]:
            reasons[key] = "rights_no_longer_allow"
        elif status.get(asset) == "rejected":
            reasons[key] = "version_rejected"
        elif asset in linked:
            reasons[key] = "moved_to_another_collection"
        else:
            reasons[key] = "replaced_by_a_newer_link"
    return reasons


def member_slots(
    wanted: list[tuple[str, str]],
    found: list[str],
    cleared: pl.DataFrame,
    versions: pl.DataFrame,
    editions: pl.DataFrame,
    newest: dict[str, str],
) -> pl.DataFrame:
    """Every member considered, with what its ledger events name (the edition it is published for: a shared
    asset names the launching edition it serves, else the first of its work) and the partition."""
    keys = sorted({member_key(c, a) for c, a in wanted} | set(found))
    frame = pl.DataFrame({"key": keys}, schema={"key": pl.String}).with_columns(
        pl.col("key").str.split("|").list.first().alias("collection"),
        pl.col("key").str.split("|").list.last().alias("dam_asset_id"),
    )
    serves = cleared.select(
        "collection", pl.col("asset_id").alias("dam_asset_id"), pl.col("isbn13").alias("serves")
    )
    sheets = pl.DataFrame(
        {"dam_asset_id": list(newest.values()), "sheet_isbn": list(newest)},
        schema={"dam_asset_id": pl.String, "sheet_isbn": pl.String},
    )
    about = versions.select(
        pl.col("asset_id").alias("dam_asset_id"),
        pl.col("version").alias("dam_version"),
        "role",
        "isbn13",
        "work_id",
    )
    first_of_work = editions.sort("isbn13").group_by("work_id").agg(pl.col("isbn13").first().alias("of_work"))
    named = (
        frame.join(about, on="dam_asset_id", how="left")
        .join(sheets, on="dam_asset_id", how="left")
        .join(
            serves.unique(["collection", "dam_asset_id"], keep="first"),
            on=["collection", "dam_asset_id"],
            how="left",
        )
        .join(first_of_work, on="work_id", how="left")
        .with_columns(
            pl.coalesce("isbn13", "sheet_isbn", "serves", "of_work").alias("isbn13"),
            pl.col("role").fill_null(pl.when(pl.col("sheet_isbn").is_not_null()).then(pl.lit("title_sheet"))),
        )
    )
    return (
        named.drop("work_id", "sheet_isbn", "serves", "of_work")
        .join(editions.select("isbn13", "work_id"), on="isbn13", how="left")
        .join(
            work_periods(editions).select("work_id", pl.col("period").alias(PARTITION_COLUMN)),
            on="work_id",
            how="left",
        )
    )


def flag_incomplete(store: LineageStore, missing: pl.DataFrame, launching: pl.DataFrame, run_id: str) -> int:
    """launch_package_incomplete for each edition published with an incomplete package (once per missing set)."""
    rows = launching.join(missing, on="product_id")
    events = [
        AuditEvent(
            event_type="launch_package_incomplete",
            occurred_at=utcnow(),
            isbn13=r["isbn13"],
            work_id=str(r["work_id"]),
            actor="consodam",
            run_id=run_id,
            after={"collection": r["collection"], "missing": r["missing"]},
            identity=f"{r['isbn13']}|{r['collection']}|{'|'.join(r['missing'])}",
        )
        for r in rows.iter_rows(named=True)
    ]
    with store.engine.begin() as conn:
        store.append_events(conn, events)
    return rows.height


def merged_check(
    check: dg.AssetCheckResult, sheets: WriteResult, metadata: dict[str, Any]
) -> dg.AssetCheckResult:
    """The writes_landed check over both passes: sheet failures count as failures too."""
    if not sheets.failed:
        return check
    counts = add_counts(dict(check.metadata or {}), {"title_sheets_failed": len(sheets.failed)})
    return dg.AssetCheckResult(
        check_name=check.check_name, passed=False, severity=check.severity, metadata=counts
    )
