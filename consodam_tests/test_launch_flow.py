"""F6 against the sandboxes over HTTP: an edition enters the launch window → its collection holds its approved,
cleared versions and its ONIX title sheet → a relink swaps the version → a license change removes one → a
withdrawal removes it → the date moves out and it leaves; each step's ledger events; a second run writes
nothing; every title sheet validates against the ONIX 3.0 schema. And usage, as of any moment."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import onixcheck
import polars as pl
import sqlalchemy as sa

from consodam_pipeline.audit.answer import edition_audit
from consodam_pipeline.defs.ingest.usage import dam_usage_log
from consodam_pipeline.defs.launch.schedule import launch_window_schedule
from consodam_pipeline.derived.launch_plan import periods_moving
from consodam_pipeline.domain.launch import LaunchWindow, collection_name
from consodam_pipeline.domain.periods import period_keys, work_periods
from consodam_pipeline.store.tables import PolarsParquetIOManager
from consodam_tests.pipeline import (
    INGEST,
    Runs,
    edition_assets,
    event_types,
    ingest,
    metadata,
    resources,
    store,
    sync_partitions,
    table,
    unnamed_events,
)
from consodam_tests.support import Sandbox, edit_dam_fields

LAUNCH = ("rights_matrix", "approved_version_links", "title_asset_packages", "launch_collections")
TODAY = datetime.now(UTC).date()


def launch_assets() -> list[Any]:
    return [a for a in edition_assets() if a.key.to_user_string() in LAUNCH]


def collection(sandbox: Sandbox, name: str) -> dict[str, str]:
    """asset id → name of every member of the collection (empty if there is none)."""
    headers = {"Authorization": f"Bearer {sandbox.dam_token()}"}
    listed = httpx.get(f"{sandbox.dam_url}/otmmapi/v6/collections", headers=headers).json()
    ids = {c["name"]: c["id"] for c in listed["collection_resource"]["collection"]}
    if name not in ids:
        return {}
    members = httpx.get(
        f"{sandbox.dam_url}/otmmapi/v6/collections/{ids[name]}/assets", headers=headers
    ).json()
    return {a["asset_id"]: a["name"] for a in members["assets_resource"]["asset_list"]}


def valid_sheet(sandbox: Sandbox, asset_id: str, tmp: Path) -> str:
    """The sheet's XML, checked against the ONIX 3.0 schema."""
    headers = {"Authorization": f"Bearer {sandbox.dam_token()}"}
    xml = httpx.get(f"{sandbox.dam_url}/otmmapi/v6/assets/{asset_id}/contents", headers=headers).text
    path = tmp / f"{asset_id}.xml"
    path.write_text(xml)
    assert onixcheck.validate(str(path)) == [], xml[:500]
    return xml


def title_sheets(held: dict[str, str], isbn: str) -> list[str]:
    """The title sheets of this edition among a collection's members (a new version's name says " vN")."""
    return [a for a, n in held.items() if n.startswith(f"{isbn} title sheet") and n.endswith(".xml")]


def events(home: Path, kind: str, isbn: str | None = None) -> list[dict[str, Any]]:
    query = "SELECT * FROM audit_ledger WHERE event_type = :k" + (" AND isbn13 = :i" if isbn else "")
    with store(home).engine.connect() as conn:
        rows = conn.execute(sa.text(query + " ORDER BY occurred_at"), {"k": kind, "i": isbn}).mappings()
        return [dict(r) | {"after": json.loads(r["after_json"] or "null")} for r in rows]


def test_a_launch_collection_follows_its_edition(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path / "sandbox", works=40, dirt_rate=0.0).start()
    home = tmp_path / "home"
    try:
        with dg.instance_for_test() as instance:
            ingest(sandbox, home, instance)
            links = sync_partitions(sandbox, home, instance, period_keys(), launch_assets())
            assert links.success
            linked = pl.read_parquet(home / "tables" / "approved_version_links")
            editions = table(home, "title_metadata_snapshot")
            covered = linked.filter(pl.col("scope") == "edition").select("product_id").unique()
            title = (
                editions.join(covered, on="product_id")
                .filter(pl.col("publication_date") < TODAY)
                .row(0, named=True)
            )
            pid, isbn = title["product_id"], title["isbn13"]
            launch_day = TODAY + timedelta(days=30)
            name = collection_name(launch_day, title["imprint"])

            def moved(**fields: Any) -> Runs:
                sandbox.admin("consonance", "POST", f"/_sandbox/products/{pid}", json=fields)
                return run()

            def run() -> Runs:
                ingest(sandbox, home, instance)
                current = table(home, "title_metadata_snapshot")
                periods = set(work_periods(current).filter(pl.col("work_id") == title["work_id"])["period"])
                return sync_partitions(
                    sandbox, home, instance, sorted(periods | {period_of(editions, title)}), launch_assets()
                )

            # 1. It enters the window: its sheet and its cleared, approved versions are published.
            moved(
                publicationDate=launch_day.isoformat(),
                onixPublishingStatusCode="02",
                isForSaleWorldwide=True,
                notForSaleCountryCodes=[],
                salesEmbargoDate=None,
            )
            now_linked = pl.read_parquet(home / "tables" / "approved_version_links").filter(
                pl.col("product_id") == pid
            )
            held = collection(sandbox, name)
            sheets = title_sheets(held, isbn)
            assert len(sheets) == 1
            assert set(now_linked["asset_id"]) <= set(held)  # every cleared linked version
            xml = valid_sheet(sandbox, sheets[0], tmp_path)
            assert isbn in xml and all(a in xml for a in now_linked["asset_id"])
            published = {e["dam_asset_id"] for e in events(home, "published_to_collection", isbn)}
            assert set(now_linked["asset_id"]) <= published
            assert events(home, "title_sheet_published", isbn)
            again = sync_partitions(sandbox, home, instance, [period_of(editions, title)], launch_assets())
            assert sum(metadata(again, "launch_collections").get(k, 0) for k in ("created", "removed")) == 0

            # 2. A relink: a new cover version approved replaces the old one in the collection.
            cover = now_linked.filter(pl.col("role") == "front_cover").row(0, named=True)
            new = sandbox.admin("dam", "POST", f"/_sandbox/assets/{cover['asset_id']}/versions", json={})[
                "asset_id"
            ]
            sandbox.admin("dam", "POST", f"/_sandbox/assets/{new}/approval", json={"status": "approved"})
            run()
            held = collection(sandbox, name)
            assert new in held and cover["asset_id"] not in held
            removed = {
                e["dam_asset_id"]: e["after"]["reason"] for e in events(home, "removed_from_collection", isbn)
            }
            assert removed[cover["asset_id"]] == "replaced_by_a_newer_link"
            fresh = title_sheets(held, isbn)
            assert len(fresh) == 1 and fresh != sheets and new in valid_sheet(sandbox, fresh[0], tmp_path)
            assert removed[sheets[0]] == "title_sheet_updated"

            # 3. A license that ends before publication takes one version out.
            other = now_linked.filter(pl.col("role") != "front_cover").row(0, named=True)
            edit_dam_fields(
                sandbox,
                other["asset_id"],
                {"CONSODAM.FIELD.LICENSE_UNTIL": (TODAY - timedelta(days=1)).isoformat()},
            )
            run()
            assert other["asset_id"] not in collection(sandbox, name)
            reasons = {
                e["dam_asset_id"]: e["after"]["reason"] for e in events(home, "removed_from_collection", isbn)
            }
            assert reasons[other["asset_id"]] == "rights_no_longer_allow"

            # 4. Withdrawn from sale: everything of it leaves; back on sale, it returns.
            moved(onixPublishingStatusCode="11")
            assert not [a for a, n in collection(sandbox, name).items() if isbn in n or a == new]
            assert "edition_withdrawn" in {
                e["after"]["reason"] for e in events(home, "removed_from_collection", isbn)
            }
            moved(onixPublishingStatusCode="02")
            assert new in collection(sandbox, name)

            # 5. The date moves out of the window: it leaves the collection.
            moved(publicationDate=(TODAY + timedelta(days=200)).isoformat())
            assert new not in collection(sandbox, name)
            assert "left_the_launch_window" in {
                e["after"]["reason"] for e in events(home, "removed_from_collection", isbn)
            }
            quiet = run()
            assert sum(metadata(quiet, "launch_collections").get(k, 0) for k in ("created", "removed")) == 0
            assert unnamed_events(home) == {}
            assert {
                "published_to_collection",
                "removed_from_collection",
                "title_sheet_published",
            } <= event_types(home)
    finally:
        sandbox.stop()


def period_of(editions: pl.DataFrame, title: dict[str, Any]) -> str:
    return str(work_periods(editions).filter(pl.col("work_id") == title["work_id"])["period"][0])


def test_the_schedule_marks_exactly_the_periods_entering_or_leaving_that_day(tmp_path: Path) -> None:
    window = LaunchWindow(days_before=90, days_after=30)
    day = date(2027, 3, 1)
    editions = pl.DataFrame(
        {
            "product_id": [1, 2, 3, 4, 5],
            "work_id": [10, 20, 30, 40, 40],
            "publication_date": [
                day + timedelta(days=90),
                day - timedelta(days=31),
                day + timedelta(days=89),
                day - timedelta(days=30),
                date(1999, 5, 1),
            ],
        }
    )
    # 1 enters today, 2 left (yesterday was its last day); 3 entered yesterday, 4's last day is today.
    expected = sorted(work_periods(editions).filter(pl.col("work_id").is_in([10, 20]))["period"].to_list())
    assert periods_moving(editions, window, day) == expected
    titles = PolarsParquetIOManager(base_path=str(tmp_path / "tables"))
    titles_path = Path(titles.path_for(dg.AssetKey("title_metadata_snapshot")))
    titles_path.parent.mkdir(parents=True)
    editions.write_parquet(titles_path)
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2027, 3, 1, 0, 10, tzinfo=UTC))
    request = launch_window_schedule(context, io_manager=titles)
    assert isinstance(request, dg.RunRequest) and request.run_key == "launch-window:2027-03-01"
    assert request.run_config["ops"]["mark_launch_periods"]["config"]["periods"] == expected
    quiet = launch_window_schedule(
        dg.build_schedule_context(scheduled_execution_time=datetime(2027, 4, 15, tzinfo=UTC)),
        io_manager=titles,
    )
    assert isinstance(quiet, dg.SkipReason)


def test_usage_appears_in_the_audit_as_of_its_moment(fresh_sandbox: Sandbox, tmp_path: Path) -> None:
    home = tmp_path / "home"
    with dg.instance_for_test() as instance:
        ingest(fresh_sandbox, home, instance)
        inventory = table(home, "dam_asset_inventory")
        version = inventory.filter(
            pl.col("isbn13").is_not_null() & (pl.col("approval_status") == "approved")
        ).row(0, named=True)
        early, late = "2026-06-01T09:00:00.000Z", "2026-09-01T09:00:00.000Z"
        for at, channel in ((early, "retailer_feed"), (late, "social")):
            fresh_sandbox.admin(
                "dam",
                "POST",
                "/_sandbox/usage",
                json={"asset_id": version["asset_id"], "channel": channel, "at": at},
            )
        read = dg.materialize(
            [*INGEST, dam_usage_log],
            selection=[dam_usage_log],
            instance=instance,
            resources=resources(fresh_sandbox, home),
        )
        assert metadata(read, "dam_usage_log")["added"] >= 2
        again = dg.materialize(
            [*INGEST, dam_usage_log],
            selection=[dam_usage_log],
            instance=instance,
            resources=resources(fresh_sandbox, home),
        )
        assert metadata(again, "dam_usage_log")["added"] == 0  # the cursor moved with the rows
    lineage = store(home)
    used = edition_audit(lineage, version["isbn13"]).usage
    assert [(u["channel"], u["asset_id"]) for u in used if u["asset_id"] == version["asset_id"]][-2:] == [
        ("retailer_feed", version["asset_id"]),
        ("social", version["asset_id"]),
    ]
    between = edition_audit(lineage, version["isbn13"], datetime(2026, 7, 1, tzinfo=UTC)).usage
    assert [u["channel"] for u in between if u["asset_id"] == version["asset_id"]] == ["retailer_feed"]


def test_the_launch_window_job_marks_the_periods_it_is_given() -> None:
    from consodam_pipeline.defs.launch.schedule import launch_window_job

    periods = ["2024-Q1", "2023"]
    config = {"ops": {"mark_launch_periods": {"config": {"day": "2024-01-02", "periods": periods}}}}
    with dg.instance_for_test() as instance:
        result = launch_window_job.execute_in_process(run_config=config, instance=instance)
        marked = {
            (str(m.partition), m.metadata["source"].value, m.metadata["day"].value)
            for m in (e.materialization for e in result.get_asset_materialization_events())
            if m.asset_key == dg.AssetKey("edition_changes")
        }
    assert marked == {(p, "launch window", "2024-01-02") for p in periods}
