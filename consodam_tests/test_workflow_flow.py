"""F2 and F5 against the sandboxes over HTTP: a title reaches Cover approval, review tasks open for exactly its
unapproved covers, the stage is held until the last is approved and then advances once; a rejection closes
its task and holds the title; the approved files are referenced in Consonance; a second run writes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import polars as pl
import sqlalchemy as sa

from consodam_pipeline.domain.periods import work_periods
from consodam_tests.pipeline import (
    Runs,
    edition_assets,
    event_types,
    ingest,
    metadata,
    store,
    sync_partitions,
    table,
    unnamed_events,
)
from consodam_tests.support import Sandbox

WORKFLOW = (
    "title_asset_packages",
    "consonance_stage_advances",
    "dam_review_tasks",
    "consonance_production_files",
)
FRONT = {"mime_type": "image/jpeg", "width_px": 1800, "height_px": 2700, "colour_space": "RGB"}
FULL = {"mime_type": "application/pdf", "width_px": 3600, "height_px": 2700, "colour_space": "CMYK"}
INTERIOR = {"mime_type": "application/pdf", "page_count": 320}


def workflow() -> list[Any]:
    return [a for a in edition_assets() if a.key.to_user_string() in WORKFLOW]


def tasks(sandbox: Sandbox, **params: str) -> list[dict[str, Any]]:
    reply = httpx.get(
        f"{sandbox.dam_url}/otmmapi/v6/reviewtasks",
        params=params,
        headers={"Authorization": f"Bearer {sandbox.dam_token()}"},
    )
    return list(reply.json()["review_tasks"])


def stage_of(sandbox: Sandbox, product_id: int) -> str:
    return str(
        sandbox.graphql("query($i: Int!) { product(id: $i) { projectStageName } }", {"i": product_id})[
            "data"
        ]["product"]["projectStageName"]
    )


def events(home: Path, kind: str, isbn: str) -> list[dict[str, Any]]:
    with store(home).engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT * FROM audit_ledger WHERE event_type = :k AND isbn13 = :i ORDER BY occurred_at"),
            {"k": kind, "i": isbn},
        ).mappings()
        return [dict(r) | {"after": json.loads(r["after_json"] or "null")} for r in rows]


def new_asset(sandbox: Sandbox, role: str, isbn: str, facts: dict[str, Any]) -> str:
    asset = sandbox.admin(
        "dam", "POST", "/_sandbox/assets", json={"role": role, "isbn": isbn, "facts": facts}
    )
    sandbox.admin(
        "dam", "POST", f"/_sandbox/assets/{asset['asset_id']}/approval", json={"status": "in_review"}
    )
    return str(asset["asset_id"])


def decide(sandbox: Sandbox, asset_id: str, status: str) -> None:
    task = next(t for t in tasks(sandbox, status="open") if t["asset_id"] == asset_id)
    sandbox.admin(
        "dam",
        "POST",
        f"/_sandbox/reviewtasks/{task['task_id']}/complete",
        json={"status": status, "by": "art.director@publisher.example"},
    )


def written(result: Runs) -> int:
    counts = ("created", "updated", "removed", "duplicates_removed")
    return sum(metadata(result, a).get(k, 0) for a in WORKFLOW[1:] for k in counts)


def test_a_title_advances_only_when_its_milestone_is_met(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path / "sandbox", works=30, dirt_rate=0.0).start()
    home = tmp_path / "home"
    try:
        with dg.instance_for_test() as instance:
            ingest(sandbox, home, instance)
            editions = table(home, "title_metadata_snapshot")
            title = (
                editions.filter(pl.col("format_family") == "print")
                .sort("publication_date")
                .row(-1, named=True)
            )
            pid, isbn = title["product_id"], title["isbn13"]
            period = str(work_periods(editions).filter(pl.col("work_id") == title["work_id"])["period"][0])
            # Its covers and interior start over: every earlier version is rejected, new files go in for review.
            old = table(home, "dam_asset_inventory").filter(
                (pl.col("isbn13") == isbn)
                & pl.col("role").is_in(["front_cover", "back_cover", "full_cover", "full_content"])
                & (pl.col("approval_status") != "rejected")
            )
            for asset_id in old["asset_id"]:
                sandbox.admin(
                    "dam", "POST", f"/_sandbox/assets/{asset_id}/approval", json={"status": "rejected"}
                )
            front, full = (
                new_asset(sandbox, "front_cover", isbn, FRONT),
                new_asset(sandbox, "full_cover", isbn, FULL),
            )
            interior = new_asset(sandbox, "full_content", isbn, INTERIOR)
            sandbox.admin(
                "consonance", "POST", f"/_sandbox/products/{pid}", json={"projectStageName": "Design"}
            )

            def run() -> Runs:
                ingest(sandbox, home, instance)
                return sync_partitions(sandbox, home, instance, [period], workflow())

            run()
            assert not [
                t for t in tasks(sandbox, status="open") if t["isbn"] == isbn
            ]  # not at a milestone yet
            sandbox.admin(
                "consonance", "POST", f"/_sandbox/products/{pid}/milestone", json={"stage": "Cover approval"}
            )
            run()
            opened = {t["asset_id"] for t in tasks(sandbox, status="open") if t["isbn"] == isbn}
            assert opened == {front, full}  # exactly its unapproved required covers
            assert stage_of(sandbox, pid) == "Cover approval"

            decide(sandbox, front, "approved")
            run()
            assert stage_of(sandbox, pid) == "Cover approval"  # held: one cover still in review
            held = events(home, "stage_held", isbn)[-1]["after"]
            assert held["milestone"] == "Cover approval" and held["missing"] == ["full_cover (in_review)"]
            assert [e["after"]["decision"] for e in events(home, "review_task_completed", isbn)] == [
                "approved"
            ]

            decide(sandbox, full, "approved")
            result = run()
            assert stage_of(sandbox, pid) == "Production sign-off"  # advanced, once, in Consonance
            advanced = events(home, "stage_advanced", isbn)
            assert len(advanced) == 1 and advanced[0]["after"]["to"] == "Production sign-off"
            assert {r: v["asset_id"] for r, v in advanced[0]["after"]["met_by"].items()} == {
                "front_cover": front,
                "full_cover": full,
            }
            assert metadata(result, "consonance_stage_advances")["advanced"] == 1
            # Production sign-off needs the whole print package: the interior is in review.
            assert {t["asset_id"] for t in tasks(sandbox, status="open") if t["isbn"] == isbn} == {interior}
            files = sandbox.graphql(
                "query($i: Int!) { product(id: $i) { productionFiles { fileType url } } }", {"i": pid}
            )["data"]["product"]["productionFiles"]
            assert {f["fileType"]: f["url"].split("/")[-2] for f in files} == {
                "front_cover": front,
                "full_cover": full,
            }

            again = sync_partitions(sandbox, home, instance, [period], workflow())
            assert written(again) == 0 and len(events(home, "stage_advanced", isbn)) == 1
            echo = ingest(sandbox, home, instance)  # consodam's own stage write comes back: no period
            assert metadata(echo, "title_metadata_snapshot")["changed"] == 1
            assert metadata(echo, "title_metadata_snapshot")["periods_touched"] == 0

            decide(sandbox, interior, "rejected")
            run()
            assert stage_of(sandbox, pid) == "Production sign-off"  # the rejection holds the title
            decided = next(t for t in tasks(sandbox) if t["asset_id"] == interior)
            assert decided["status"] == "rejected"
            requests = [
                t for t in tasks(sandbox, status="open") if t["isbn"] == isbn and t["kind"] == "request"
            ]
            assert [(t["requirement"], t["milestone"]) for t in requests] == [
                ("interior", "Production sign-off")
            ]
            held = events(home, "stage_held", isbn)[-1]["after"]
            assert held["missing"] == ["interior (rejected)"]
            assert sorted(e["after"]["decision"] for e in events(home, "review_task_completed", isbn)) == [
                "approved",
                "approved",
                "rejected",
            ]
            # Every event of the flow names its edition (and version and role where it has one), the review
            # tasks made moot included: the audit finds each by ISBN.
            assert unnamed_events(home) == {}
            assert {
                "stage_advanced",
                "stage_held",
                "review_task_opened",
                "review_task_completed",
                "package_referenced",
            } <= event_types(home)
    finally:
        sandbox.stop()
