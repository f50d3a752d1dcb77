"""launch_collections (F6) for a slice of periods, as two engine passes: the title sheets (imported once,
versioned when the title data changes), then the collection memberships (the sheet's newest version and
every cleared linked version). An edition published with an incomplete package is flagged in the ledger.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import dagster as dg
import polars as pl

from consodam_pipeline.clients.opentext_dam import DamClient, content_url
from consodam_pipeline.derived.launch_plan import LaunchPlan, in_window, launch_plan, title_sheets
from consodam_pipeline.derived.title_tags import tag_fields
from consodam_pipeline.domain.launch import LaunchWindow
from consodam_pipeline.domain.periods import with_period, works_in
from consodam_pipeline.domain.timestamps import utcnow
from consodam_pipeline.store.ledger import AuditEvent
from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.sync.dam_launch import LaunchMemberTarget, TitleSheetTarget, sheet_sha, sheet_state
from consodam_pipeline.sync.record import WriteResult
from consodam_pipeline.sync.report import write_metadata
from consodam_pipeline.sync.write_asset import run_target

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


@dataclass
class Launch:
    plan: LaunchPlan
    editions: pl.DataFrame  # the period's editions, with their period
    versions: pl.DataFrame  # the period's DAM versions (LAUNCH_INPUTS)
    sheets: TitleSheetTarget

    @property
    def sheets_desired(self) -> pl.DataFrame:
        xml = self.sheets.sheets
        states = [sheet_state(sheet_sha(x)) for x in xml.values()]
        return pl.DataFrame(
            {"key": list(xml), "state": states}, schema={"key": pl.String, "state": pl.String}
        )

    def members(self, client: DamClient) -> LaunchMemberTarget:
        """The membership target, once the sheets are published: it reads their newest versions."""
        newest = self.sheets.newest(client, self.editions["isbn13"].to_list())
        return LaunchMemberTarget(
            launching=self.plan.launching,
            cleared=self.plan.cleared,
            versions=self.versions,
            editions=self.editions,
            newest=dict(newest.select("key", "handle").iter_rows()),
            sheets=set(self.sheets.every_version(client)),
        )


# What the plan reads of the rights matrix and the packages: a few columns of the editions in the window.
MATRIX_INPUTS = ["product_id", "asset_id", "visible", "grant_from", "grant_until"]
PACKAGE_INPUTS = ["product_id", "requirement", "status"]


def near_launch(frame: pl.DataFrame | pl.LazyFrame, columns: list[str], ids: pl.Series) -> pl.DataFrame:
    """The rows of these editions, these columns only: a lazy input (a Parquet scan) reads no more."""
    return frame.lazy().select(columns).filter(pl.col("product_id").is_in(ids.implode())).collect()


def plan_launch(
    titles: pl.DataFrame,
    links: pl.DataFrame,
    matrix: pl.DataFrame | pl.LazyFrame,
    packages: pl.DataFrame | pl.LazyFrame,
    inventory: pl.LazyFrame,
    keys: Sequence[str],
    window: LaunchWindow,
    dam_url: str,
    today: date | None = None,
) -> Launch:
    today = today or utcnow().date()
    editions = works_in(titles, keys)
    wanted = pl.col("isbn13").is_in(editions["isbn13"].implode()) | pl.col("work_id").is_in(
        editions["work_id"].implode()
    )
    versions = inventory.select(LAUNCH_INPUTS).filter(wanted).collect()
    ids = in_window(editions, window, today)["product_id"]
    grants, requirements = near_launch(matrix, MATRIX_INPUTS, ids), near_launch(packages, PACKAGE_INPUTS, ids)
    plan = launch_plan(editions, links, grants, requirements, window, today)
    xml = title_sheets(plan, versions, lambda asset_id: content_url(dam_url, asset_id))
    sheets = TitleSheetTarget(sheets=xml, tags=tag_fields(plan.launching), editions=editions)
    return Launch(plan, with_period(editions, editions, "period"), versions, sheets)


@dataclass
class Published:
    sheets: WriteResult  # the title sheets' pass
    members: LaunchMemberTarget
    result: WriteResult  # the memberships' pass
    slots: pl.DataFrame
    figures: dict[str, Any]


def publish(
    context: dg.AssetExecutionContext, launch: Launch, client: DamClient, store: LineageStore
) -> Published:
    """The title sheets, then the memberships (with the sheets' newest versions), then the flags."""
    sheets, _ = run_target(context, launch.sheets, client, store, launch.sheets_desired)
    members = launch.members(client)
    desired = members.desired()
    result, slots = run_target(context, members, client, store, desired)
    flagged = flag_incomplete(store, launch.plan, context.run.run_id)
    return Published(sheets, members, result, slots, launch_figures(launch, sheets, desired, flagged, store))


def flag_incomplete(store: LineageStore, plan: LaunchPlan, run_id: str) -> int:
    """launch_package_incomplete for each edition published with an incomplete package (once per missing set)."""
    rows = plan.launching.join(plan.missing, on="product_id")
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
        store.ledger.record(conn, events)
    return rows.height


def launch_figures(
    launch: Launch, sheets: WriteResult, members: pl.DataFrame, flagged: int, store: LineageStore
) -> dict[str, Any]:
    """What the materialization adds to the membership's metadata: the sheets' counts and the launch's."""
    sheet_meta, _ = write_metadata("Title sheets", launch.sheets, sheets, store)
    figures = {f"title_sheets_{k}": v for k, v in sheet_meta.items() if k in ("created", "updated", "failed")}
    return figures | {
        "editions_launching": launch.plan.launching.height,
        "collections": launch.plan.launching["collection"].n_unique(),
        "flagged_incomplete": flagged,
        "held_incomplete": launch.plan.held,
        "members_wanted": members.height,
    }
