"""The write path against the sandboxes over HTTP: exact under faults, converging after rejections, never
silent about a failing item, surviving a kill, and never waking itself with its own writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import sqlalchemy as sa

from consodam_pipeline.defs.ingest.sensors import consonance_change_sensor, dam_change_sensor
from consodam_pipeline.derived.restrictions import RESTRICTIONS, desired_restrictions
from consodam_pipeline.derived.rights_matrix import asset_grants
from consodam_pipeline.derived.title_tags import TITLE_TAGS, desired_tags
from consodam_pipeline.domain.periods import period_keys
from consodam_pipeline.sync.consonance_resources import asset_in_url
from consodam_pipeline.sync.probe import due_now
from consodam_pipeline.sync.report import WRITES_CHECK
from consodam_pipeline.verify import consonance_dam_resources
from consodam_tests.pipeline import (
    Runs,
    all_definitions,
    edition_tick,
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

ALL = period_keys()
WRITERS = ("dam_access_restrictions", "dam_title_tags", "consonance_asset_links")
ENTITIES = {
    "dam_access_restrictions": "dam_restriction",
    "dam_title_tags": "dam_title_tags",
    "consonance_asset_links": "consonance_link",
}
DAM_FAULTS = ["429", "500", "502", "503", "drop", "truncated", "expired_token"]


def owned_resources(sandbox: Sandbox) -> dict[int, list[tuple[int, str]]]:
    """product id → (resource id, URL) of every resource pointing into the DAM, as Consonance holds them."""
    owned: dict[int, list[tuple[int, str]]] = {}
    for product, resource, url in consonance_dam_resources(sandbox):
        owned.setdefault(product, []).append((resource, url))
    return owned


def assert_consonance_matches_links(sandbox: Sandbox, home: Path) -> pl.DataFrame:
    """Exactly one resource per live link, pointing at the linked version; nothing else of ours."""
    links = pl.read_parquet(home / "tables" / "approved_version_links")
    owned = owned_resources(sandbox)
    held = sorted((product, asset_in_url(url)) for product, rows in owned.items() for _, url in rows)
    wanted = sorted(links.select("product_id", "asset_id").iter_rows())
    assert held == wanted
    return links


def assert_dam_matches_desired(sandbox: Sandbox, home: Path, instance: dg.DagsterInstance) -> None:
    """Every DAM field and policy consodam owns equals the desired state, read back from the DAM."""
    ingest(sandbox, home, instance, full_refresh=True)
    inventory = table(home, "dam_asset_inventory")
    matrix = pl.read_parquet(home / "tables" / "rights_matrix").with_columns(pl.lit("any").alias("period"))
    restrictions = desired_restrictions(asset_grants(matrix), datetime.now(UTC).date())
    tags = desired_tags(table(home, "title_metadata_snapshot"), inventory)
    for target, desired in ((RESTRICTIONS, restrictions), (TITLE_TAGS, tags)):
        observed = target.observed(inventory.join(desired.select("asset_id"), on="asset_id", how="semi"))
        joined = desired.join(observed.select(pl.col("key").alias("asset_id"), "state"), on="asset_id")
        assert joined.height == desired.height > 0
        differing = joined.filter(pl.col("desired") != pl.col("state"))
        assert differing.height == 0, differing.head(3).to_dicts()


def ledger(home: Path, event_type: str) -> list[dict[str, object]]:
    with store(home).engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT * FROM audit_ledger WHERE event_type = :t"), {"t": event_type}
        ).mappings()
        return [dict(r) for r in rows]


def writes(result: Runs) -> dict[str, int]:
    counts = ("created", "updated", "removed", "duplicates_removed")
    return {asset: sum(metadata(result, asset).get(k, 0) for k in counts) for asset in WRITERS}


def test_writes_are_exact_under_faults_and_converge_after_rejections(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path / "sandbox", works=50, dirt_rate=0.0).start()
    home = tmp_path / "home"
    try:
        with dg.instance_for_test() as instance:
            ingest(sandbox, home, instance)
            sandbox.fault("consonance", mode="truncated", rate=0.05, body_contains="mutation")
            for mode in ("429", "503", "drop"):
                sandbox.fault("consonance", mode=mode, rate=0.02, retry_after=0.05)
            for mode in DAM_FAULTS:
                sandbox.fault("dam", mode=mode, rate=0.015, retry_after=0.05, path_prefix="/otmmapi")
            faulty = sync_partitions(sandbox, home, instance, ALL)
            fired = {w: sandbox.admin(w, "GET", "/_sandbox/faults")["fired"] for w in ("consonance", "dam")}
            sandbox.clear_faults()
            assert (
                faulty.success
                and fired["consonance"].get("truncated", 0) > 0
                and sum(fired["dam"].values()) > 0
            )
            links = assert_consonance_matches_links(sandbox, home)  # no duplicate although replies were cut
            tick = edition_tick(instance, sandbox, home)  # the first load's markers, answered above

            # Reviewers reject some linked versions; the next clean run removes or replaces those links.
            rejected = links.filter(pl.col("scope") == "edition").head(6)
            for row in rejected.iter_rows(named=True):
                sandbox.admin(
                    "dam",
                    "POST",
                    f"/_sandbox/assets/{row['asset_id']}/approval",
                    json={"status": "rejected", "by": "art.director@publisher.example"},
                )
            dam_probe = dam_change_sensor(
                dg.build_sensor_context(instance=instance, resources=resources(sandbox, home))
            )
            cons_probe = consonance_change_sensor(
                dg.build_sensor_context(instance=instance, resources=resources(sandbox, home))
            )
            ingest(sandbox, home, instance)
            tick = edition_tick(instance, sandbox, home, tick.cursor)
            periods = tick.periods
            assert tick.changed  # the rejections' periods (and any pending writes due by now)
            clean = sync_partitions(sandbox, home, instance, periods)
            assert all(e.passed for e in clean.get_asset_check_evaluations() if e.check_name == WRITES_CHECK)
            links = assert_consonance_matches_links(sandbox, home)
            assert not set(rejected["asset_id"]) & set(links["asset_id"])
            removed = [
                e
                for e in ledger(home, "link_removed")
                if json.loads(str(e["after_json"]))["reason"] == "version_rejected"
            ]
            emptied = rejected.join(links.select("product_id", "role"), on=["product_id", "role"], how="anti")
            assert sorted((int(str(e["dam_version"])), str(e["dam_asset_id"])) for e in removed) == sorted(
                emptied.select("version", "asset_id").iter_rows()
            )
            emptied_slots = [f"{p}|{r}" for p, r in emptied.select("product_id", "role").iter_rows()]
            assert store(home).history.open_records("consonance_link", emptied_slots).height == 0

            # consodam's own writes come back on the next ingest as nothing: no period, no run.
            echo = ingest(sandbox, home, instance)
            assert metadata(echo, "title_metadata_snapshot")["periods_touched"] == 0
            assert metadata(echo, "dam_asset_inventory")["periods_touched"] == 0
            tick = edition_tick(instance, sandbox, home, tick.cursor)
            assert tick.changed == []
            for sensor, before in ((dam_change_sensor, dam_probe), (consonance_change_sensor, cons_probe)):
                after = sensor(
                    dg.build_sensor_context(
                        instance=instance,
                        cursor=due_now(before.cursor),  # type: ignore[union-attr]
                        resources=resources(sandbox, home),
                    )
                )
                assert not after.run_requests, sensor.name  # type: ignore[union-attr]

            # Items that failed under faults in periods the clean run did not cover are still pending:
            # the next run over every period writes exactly those, and nothing else.
            pending = {w: store(home).bookkeeping.failures(ENTITIES[w]).height for w in WRITERS}
            again = sync_partitions(sandbox, home, instance, ALL)
            assert writes(again) == pending
            assert all(store(home).bookkeeping.failures(ENTITIES[w]).height == 0 for w in WRITERS)
            assert_dam_matches_desired(sandbox, home, instance)
            assert_consonance_matches_links(sandbox, home)
            # Under faults, duplicates and hand edits, every event still names its edition (and version).
            assert unnamed_events(home) == {}
            assert {"link_written", "link_removed", "restriction_applied", "tags_written"} <= event_types(
                home
            )
    finally:
        sandbox.stop()


def writers(*names: str) -> list[object]:
    from consodam_tests.pipeline import edition_assets

    return [a for a in edition_assets() if a.key.to_user_string() in names]


def test_an_item_that_keeps_failing_is_shown_and_written_once_it_can_be(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path / "sandbox", works=30, dirt_rate=0.0).start()
    home = tmp_path / "home"
    restrictions = writers("rights_matrix", "dam_access_restrictions")
    try:
        with dg.instance_for_test() as instance:
            ingest(sandbox, home, instance)
            sync_partitions(sandbox, home, instance, ALL, restrictions)
            period, victim = next(
                (f.stem, str(part.filter(pl.col("written"))["key"][0]))
                for f in sorted((home / "tables" / "dam_access_restrictions").glob("*.parquet"))
                if (part := pl.read_parquet(f)).filter(pl.col("written")).height
            )
            # Someone changes a field consodam owns by hand, and the DAM then refuses every write to it.
            edit_dam_fields(sandbox, victim, {"CONSODAM.RIGHTS.COUNTRIES": "XX"})
            ingest(sandbox, home, instance)
            sandbox.fault("dam", mode="500", rate=1.0, path_prefix=f"/otmmapi/v6/assets/{victim}")
            for run in range(1, 4):
                result = sync_partitions(sandbox, home, instance, [period], restrictions)
                meta = metadata(result, "dam_access_restrictions")
                assert (
                    meta["failed"] == 1 and meta["pending_failures"] == 1 and victim in str(meta["failures"])
                )
                check = next(e for e in result.get_asset_check_evaluations() if e.check_name == WRITES_CHECK)
                assert not check.passed
                assert check.severity == (
                    dg.AssetCheckSeverity.ERROR if run == 3 else dg.AssetCheckSeverity.WARN
                )
            sandbox.clear_faults()
            healed = sync_partitions(sandbox, home, instance, [period], restrictions)
            meta = metadata(healed, "dam_access_restrictions")
            assert meta["updated"] == 1 and meta["failed"] == 0 and meta["pending_failures"] == 0
            assert meta["manual_changes_overwritten"] == 1
            assert all(e.passed for e in healed.get_asset_check_evaluations() if e.check_name == WRITES_CHECK)
            assert [e["dam_asset_id"] for e in ledger(home, "manual_change_overwritten")] == [victim]
            assert unnamed_events(home) == {}
    finally:
        sandbox.stop()


KILLER = """
import os, signal, sys
from pathlib import Path
import dagster as dg
from consodam_pipeline.sync.consonance_resources import SupportingResourceTarget
from consodam_tests.pipeline import edition_assets, sync_partitions
from consodam_tests.support import Sandbox

sandbox = Sandbox(Path(sys.argv[1]), works=40, dirt_rate=0.0,
                  consonance_port=int(sys.argv[2]), dam_port=int(sys.argv[3]))
original = SupportingResourceTarget.create
made = 0

def create_then_die(self, client, key, state):
    global made
    found = original(self, client, key, state)
    made += 1
    if made == int(sys.argv[5]):
        os.kill(os.getpid(), signal.SIGKILL)  # killed outright after this create landed, before recording
    return found

SupportingResourceTarget.create = create_then_die
links = [a for a in edition_assets() if a.key.to_user_string() in ("approved_version_links", "consonance_asset_links")]
with dg.instance_for_test() as instance:
    sync_partitions(sandbox, Path(sys.argv[4]), instance, sys.argv[6].split(","), links)
"""


def test_a_write_back_killed_midway_leaves_nothing_missing_and_nothing_twice(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path / "sandbox", works=40, dirt_rate=0.0).start()
    home = tmp_path / "home"
    try:
        with dg.instance_for_test() as instance:
            ingest(sandbox, home, instance)
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                KILLER,
                str(sandbox.data_dir),
                str(sandbox.consonance_port),
                str(sandbox.dam_port),
                str(home),
                "25",
                ",".join(ALL),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env={**os.environ},
        )
        assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
        landed = sum(len(rows) for rows in owned_resources(sandbox).values())
        assert 25 <= landed <= 25 + 4  # creates run four at a time: a few more may have landed
        assert store(home).history.count_open("consonance_link") == 0  # killed before anything was recorded
        with dg.instance_for_test() as instance:
            rerun = sync_partitions(
                sandbox, home, instance, ALL, writers("approved_version_links", "consonance_asset_links")
            )
            assert rerun.success and metadata(rerun, "consonance_asset_links")["duplicates_removed"] == 0
        assert_consonance_matches_links(sandbox, home)  # the 25 were adopted, not created again
        assert (
            store(home).history.count_open("consonance_link")
            == pl.read_parquet(home / "tables" / "approved_version_links").height
        )
    finally:
        sandbox.stop()


@pytest.mark.parametrize("asset", ["title_metadata_snapshot"])
def test_sensor_requests_nothing_while_a_run_is_in_flight(
    fresh_sandbox: Sandbox, tmp_path: Path, asset: str
) -> None:
    home = tmp_path / "home"
    key = dg.AssetKey(asset)
    with dg.instance_for_test() as instance:
        definitions = all_definitions(fresh_sandbox, home)
        ingest(fresh_sandbox, home, instance)

        def tick(cursor: str | None) -> dg.SensorResult:
            result = consonance_change_sensor(
                dg.build_sensor_context(
                    instance=instance, cursor=due_now(cursor), resources=resources(fresh_sandbox, home)
                )
            )
            assert isinstance(result, dg.SensorResult)
            return result

        quiet = tick(None)
        assert not quiet.run_requests
        job = definitions.resolve_implicit_global_asset_job_def()
        running = instance.create_run_for_job(
            job, asset_selection=frozenset({key}), status=dg.DagsterRunStatus.STARTED
        )
        products = [
            p["id"] for p in fresh_sandbox.graphql("{ products(limit: 3) { id } }")["data"]["products"]
        ]
        cursor = quiet.cursor
        for product in products:
            fresh_sandbox.admin(
                "consonance", "POST", f"/_sandbox/products/{product}", json={"fullTitle": f"Edit {product}"}
            )
            busy = tick(cursor)
            assert not busy.run_requests and f"run {running.run_id[:8]}" in str(busy.skip_reason)
            assert busy.cursor == due_now(cursor)  # the window is kept for the tick after the run
        instance.report_run_failed(running)
        after = tick(cursor)
        assert len(after.run_requests or []) == 1
        assert after.run_requests[0].tags["consodam/new_changes"] == "3"  # type: ignore[index]
        assert not tick(after.cursor).run_requests
