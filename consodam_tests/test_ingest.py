"""Ingest assets against the sandboxes over HTTP: incremental equals full, faults lose nothing, crashes
leave history and cursor consistent, bad records land in quarantine with their reasons."""

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import httpx
import polars as pl
import pytest

from consodam_pipeline.clients.http import ApiError
from consodam_pipeline.defs.ingest.inventory import dam_asset_inventory
from consodam_pipeline.defs.ingest.titles import title_metadata_snapshot
from consodam_pipeline.domain.isbn import make_isbn13
from consodam_pipeline.endpoints import DAM_CLIENT_SECRET
from consodam_pipeline.sync.consonance_ingest import CHANGED_SINCE_CURSOR
from consodam_tests.pipeline import ingest, metadata, store, table
from consodam_tests.support import Sandbox


def frames(home: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    return (
        table(home, "title_metadata_snapshot").sort("product_id"),
        table(home, "dam_asset_inventory").sort("asset_id"),
    )


def assert_same(a: pl.DataFrame, b: pl.DataFrame) -> None:
    assert a.columns == b.columns
    assert a.height == b.height
    assert a.equals(b), "snapshots differ"


def test_full_then_incremental_equals_full(
    fresh_sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "incremental"
    scratch = tmp_path / "scratch"  # where the runs spool what they fetch
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with dg.instance_for_test() as instance:
        first = ingest(fresh_sandbox, home, instance)
        assert metadata(first, "title_metadata_snapshot")["mode"] == "full reconciliation"
        changed = fresh_sandbox.admin(
            "consonance", "POST", "/_sandbox/activity", json={"changes": 25, "seed": 1}
        )
        touched = fresh_sandbox.admin("dam", "POST", "/_sandbox/activity", json={"changes": 25, "seed": 2})
        second = ingest(fresh_sandbox, home, instance)
    for asset in ("title_metadata_snapshot", "dam_asset_inventory"):  # the cheap path was taken
        assert metadata(second, asset)["snapshot_built_from"] == "previous snapshot + changes"
    titles = metadata(second, "title_metadata_snapshot")
    assert titles["mode"] == "incremental"
    # a rights edit can also repair a quarantined record, which then counts as added
    assert 0 < titles["changed"] + titles["added"] <= len(changed["changed_product_ids"])
    inventory = metadata(second, "dam_asset_inventory")
    assert inventory["mode"] == "incremental" and inventory["added"] + inventory["changed"] > 0
    assert inventory["added"] + inventory["changed"] <= len(touched["changed_asset_ids"])
    reference = tmp_path / "reference"
    ingest(fresh_sandbox, reference)
    assert not [p for p in scratch.iterdir() if p.name.startswith("consodam-spool-")], "spool left behind"
    for incremental, full in zip(frames(home), frames(reference), strict=True):
        assert_same(incremental, full)


def test_faults_lose_and_duplicate_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    clean = tmp_path / "clean"
    ingest(sandbox, clean)
    for which in ("consonance", "dam"):
        for mode in ("429", "500", "502", "503", "drop", "truncated"):
            sandbox.fault(which, mode=mode, rate=0.1 / 6, retry_after=0.05)
        sandbox.fault(which, mode="slow", rate=0.02, delay=1.5)
    sandbox.fault("dam", mode="expired_token", rate=0.03)
    faulty = tmp_path / "faulty"
    result = ingest(sandbox, faulty, timeout_s=1.0, max_attempts=12)
    assert metadata(result, "title_metadata_snapshot")["http_retries"] > 0
    fired = sum(sandbox.admin("dam", "GET", "/_sandbox/faults")["fired"].values())
    assert fired > 0
    for got, expected in zip(frames(faulty), frames(clean), strict=True):
        assert_same(got, expected)
        key = "product_id" if "product_id" in got.columns else "asset_id"
        assert got[key].is_unique().all()
    history = store(faulty)
    assert history.history.count_open("edition") == frames(clean)[0].height


KILLER = """
import sys, dagster as dg
from pathlib import Path
from consodam_tests.pipeline import ingest
from consodam_tests.support import Sandbox
from consodam_pipeline.clients.http import ApiError
from consodam_pipeline.defs.ingest.titles import title_metadata_snapshot
sandbox = Sandbox(Path(sys.argv[1]), consonance_port=int(sys.argv[2]), dam_port=int(sys.argv[3]))
print("running", flush=True)
ingest(sandbox, Path(sys.argv[4]), assets=[title_metadata_snapshot])
"""


def test_killed_run_leaves_history_and_cursor_consistent(fresh_sandbox: Sandbox, tmp_path: Path) -> None:
    home = tmp_path / "home"
    scratch = tmp_path / "scratch"  # the child's temp directory, where its spool lives
    scratch.mkdir()
    fresh_sandbox.fault("consonance", mode="slow", rate=1.0, delay=0.4)
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            KILLER,
            str(fresh_sandbox.data_dir),
            str(fresh_sandbox.consonance_port),
            str(fresh_sandbox.dam_port),
            str(home),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "running"
    served, deadline = 0, time.monotonic() + 60
    while served < 3 and time.monotonic() < deadline:  # mid-way through the pages: some served, more to come
        time.sleep(0.1)
        served = fresh_sandbox.admin("consonance", "GET", "/_sandbox/faults")["fired"].get("slow", 0)
    child.kill()
    child.wait(10)
    assert served >= 3
    # Killed outright, it could not remove its spool; a later ingest sweeps it once it is stale.
    assert [p.name.split("-")[2] for p in scratch.glob("consodam-spool-*")] == [str(child.pid)]
    fresh_sandbox.clear_faults()
    lineage = store(home)
    assert lineage.cursors.get(CHANGED_SINCE_CURSOR) is None  # nothing committed: the next run starts over
    assert lineage.history.count_open("edition") == 0
    ingest(fresh_sandbox, home, assets=[title_metadata_snapshot])
    reference = tmp_path / "reference"
    ingest(fresh_sandbox, reference, assets=[title_metadata_snapshot])
    assert_same(table(home, "title_metadata_snapshot"), table(reference, "title_metadata_snapshot"))
    assert lineage.cursors.get(CHANGED_SINCE_CURSOR) == datetime.now(UTC).date().isoformat()


def product_ids(sandbox: Sandbox, n: int) -> list[int]:
    data = sandbox.graphql("{ products(limit: 50) { id isbn { isbn13 } } }")["data"]["products"]
    return [int(p["id"]) for p in data[:n]]


def test_bad_records_land_in_quarantine_with_reasons(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path / "clean-sandbox", dirt_rate=0.0).start()
    try:
        bad_isbn, bad_territory, bad_date, no_date, fine = product_ids(sandbox, 5)
        edit = "/_sandbox/products/{}"
        sandbox.admin("consonance", "POST", edit.format(bad_isbn), json={"isbn13": "9780306406158"})
        sandbox.admin(
            "consonance",
            "POST",
            edit.format(bad_territory),
            json={"forSaleCountryCodes": ["GB", "XX"], "isForSaleWorldwide": False},
        )
        sandbox.admin("consonance", "POST", edit.format(bad_date), json={"publicationDate": "2024-02-30"})
        sandbox.admin(
            "consonance",
            "POST",
            edit.format(no_date),
            json={"publicationDate": None, "onixPublishingStatusCode": "04"},
        )
        orphan = sandbox.admin(
            "dam",
            "POST",
            "/_sandbox/assets",
            json={"role": "front_cover", "isbn": make_isbn13("555555555", "979")},
        )["asset_id"]
        home = tmp_path / "home"
        result = ingest(sandbox, home)
        lineage = store(home)
        reasons = {
            (r["record_key"], r["reason"].split(":")[0])
            for r in lineage.quarantine.open().iter_rows(named=True)
        }
        assert (str(bad_isbn), "invalid_isbn") in reasons
        assert (str(bad_territory), "unknown_territory") in reasons
        assert (str(bad_date), "malformed_date") in reasons
        assert (str(no_date), "missing_date") in reasons
        assert (orphan, "orphan_tag") in reasons
        detail = lineage.quarantine.open("consonance").filter(pl.col("record_key") == str(bad_isbn))[
            "reason"
        ][0]
        assert "bad check digit 8, expected 7" in detail
        titles = table(home, "title_metadata_snapshot")
        total = sandbox.admin("consonance", "GET", "/_sandbox/stats")["counts"]["products"]
        assert titles.height == total - 4 and fine in titles["product_id"].to_list()
        inventory = table(home, "dam_asset_inventory")
        assert inventory.filter(pl.col("asset_id") == orphan)["orphan_tag"].to_list() == [True]
        flagged = inventory.filter(pl.col("orphan_tag"))  # also covers of the quarantined editions
        known = set(titles["isbn13"].to_list())
        assert not known & set(flagged["isbn13"].drop_nulls().to_list())
        assert (
            not inventory.filter(~pl.col("orphan_tag"))["isbn13"].drop_nulls().is_in(list(known)).not_().any()
        )
        checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
        assert checks["editions_have_valid_unique_isbns"].passed
        held = checks["quarantined_title_records"]
        assert not held.passed and held.metadata["quarantined_records"].value == 4
        assert not checks["quarantined_dam_records"].passed  # the orphan
        assert "approvals_are_attributed" in checks
        # evaluated in the ingest's own steps: no process started for a check
        check_steps = {
            e.step_key for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"
        }
        assert check_steps == {"title_metadata_snapshot", "dam_asset_inventory"}
        meta = metadata(result, "title_metadata_snapshot")
        assert meta["quarantined_by_kind"] == {
            "invalid_isbn": 1,
            "unknown_territory": 1,
            "malformed_date": 1,
            "missing_date": 1,
        }
        sandbox.admin("consonance", "POST", edit.format(bad_date), json={"publicationDate": "2024-02-28"})
        ingest(sandbox, home)
        assert str(bad_date) not in lineage.quarantine.open("consonance")["record_key"].to_list()
        assert bad_date in table(home, "title_metadata_snapshot")["product_id"].to_list()
    finally:
        sandbox.stop()


def test_full_reconciliation_notices_deletions(fresh_sandbox: Sandbox, tmp_path: Path) -> None:
    home = tmp_path / "home"
    ingest(fresh_sandbox, home)
    victim = product_ids(fresh_sandbox, 1)[0]
    before = datetime.now(UTC)
    fresh_sandbox.admin("consonance", "DELETE", f"/_sandbox/products/{victim}")
    ingest(fresh_sandbox, home, assets=[title_metadata_snapshot])
    assert (
        victim in table(home, "title_metadata_snapshot")["product_id"].to_list()
    )  # incremental cannot see it
    result = ingest(fresh_sandbox, home, full_refresh=True, assets=[title_metadata_snapshot])
    assert metadata(result, "title_metadata_snapshot")["removed"] == 1
    assert victim not in table(home, "title_metadata_snapshot")["product_id"].to_list()
    lineage = store(home)
    assert lineage.history.as_of("edition", str(victim), before) is not None  # history keeps what was there
    assert lineage.history.as_of("edition", str(victim), datetime.now(UTC)) is None


def test_metadata_tells_what_changed(sandbox: Sandbox, tmp_path: Path) -> None:
    result = ingest(sandbox, tmp_path / "home")
    for asset in ("title_metadata_snapshot", "dam_asset_inventory"):
        meta = metadata(result, asset)
        assert meta["dagster/row_count"] > 0 and meta["added"] == meta["dagster/row_count"]
        columns = [c.name for c in meta["dagster/column_schema"].columns]
        assert ("isbn13" in columns) and ("added" in meta["summary"])
    assert "CONSONANCE_API_KEY" not in json.dumps(
        {k: str(v) for k, v in metadata(result, "dam_asset_inventory").items()}
    )
    assert DAM_CLIENT_SECRET not in str(metadata(result, "dam_asset_inventory"))


@pytest.mark.parametrize("asset", [title_metadata_snapshot, dam_asset_inventory])
def test_exhausted_retries_fail_the_run_with_the_endpoint(
    sandbox: Sandbox, tmp_path: Path, asset: object
) -> None:
    which = "consonance" if asset is title_metadata_snapshot else "dam"
    sandbox.fault(which, mode="503", rate=1.0)
    home = tmp_path / "home"
    if which == "dam":
        ingest(sandbox, home, assets=[title_metadata_snapshot])
    with pytest.raises(ApiError) as info:
        ingest(sandbox, home, assets=[asset], max_attempts=2)
    assert "failed after 2 attempt(s): HTTP 503" in str(info.value)
    # the DAM's first request is the token's, unless this process already holds one for that DAM
    named = ("POST /graphql",) if which == "consonance" else ("POST /tenants/", "GET /otmmapi/v6/assets")
    assert info.value.endpoint.startswith(named) and info.value.attempts == 2
    assert httpx.get(f"{sandbox.consonance_url}/_sandbox/stats").status_code == 200


def test_a_table_from_an_older_consodam_is_rebuilt_in_full(sandbox: Sandbox, tmp_path: Path) -> None:
    """An upgrade that adds a field (here the title's to-dos): the next run reconciles in full instead of
    mixing old rows without the field into the new table."""
    home = tmp_path / "home"
    path = home / "tables" / "title_metadata_snapshot.parquet"
    with dg.instance_for_test() as instance:
        ingest(sandbox, home, instance)
        pl.read_parquet(path).drop("todos").write_parquet(path)
        again = ingest(sandbox, home, instance)
    titles = metadata(again, "title_metadata_snapshot")
    assert titles["mode"] == "full reconciliation"
    reference = tmp_path / "reference"
    ingest(sandbox, reference)
    assert_same(frames(home)[0], frames(reference)[0])
    assert table(home, "title_metadata_snapshot")["todos"].list.len().sum() > 0


def recorded_markers(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str, str, str]]:
    """The run's period markers: (period, sources, the step that recorded it)."""
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    found = []
    for record in records:
        event = record.event_log_entry.dagster_event
        assert event is not None
        materialization = event.event_specific_data.materialization  # type: ignore[union-attr]
        if materialization.asset_key == dg.AssetKey("edition_changes"):
            source = materialization.metadata["source"].value
            found.append((str(materialization.partition), str(source), str(event.step_key)))
    return found


def left_for_later(home: Path) -> dict[str, list[str]]:
    """Periods an ingest step left in the store for a later step to mark, by source."""
    left = store(home).cursors.named_with("edition_changes_pending:")
    return {name.split(":", 1)[1]: json.loads(value)["periods"] for name, value in left.items()}


def test_a_run_of_both_systems_marks_each_period_once_and_a_failed_dam_step_loses_none(
    fresh_sandbox: Sandbox, tmp_path: Path
) -> None:
    from consodam_tests.test_rights_flow import periods_of

    home = tmp_path / "home"
    with dg.instance_for_test() as instance:
        first = ingest(fresh_sandbox, home, instance)
        marked = recorded_markers(instance, first.run_id)
        periods = [period for period, _, _ in marked]
        assert len(periods) == len(set(periods)) > 10  # each period once, in a first load every one
        assert {step for _, _, step in marked} == {"dam_asset_inventory"}  # by the run's last ingest step
        assert {source for _, source, _ in marked} == {"consonance, dam"}
        assert left_for_later(home) == {}

        # An edition changes in Consonance; the same run's DAM step fails: the title's period waits in the store.
        product = table(home, "title_metadata_snapshot").row(0, named=True)
        edit = {"fullTitle": f"{product['title']} (revised)"}
        fresh_sandbox.admin("consonance", "POST", f"/_sandbox/products/{product['product_id']}", json=edit)
        fresh_sandbox.fault("dam", mode="503", rate=1.0)
        with pytest.raises(ApiError):
            ingest(fresh_sandbox, home, instance, max_attempts=2)
        fresh_sandbox.clear_faults()
        period = periods_of(home, product["work_id"])
        assert left_for_later(home) == {"consonance": [period]}

        # The next ingest step, of either system, records it.
        later = ingest(fresh_sandbox, home, instance, assets=[dam_asset_inventory])
        assert recorded_markers(instance, later.run_id) == [(period, "consonance", "dam_asset_inventory")]
        assert left_for_later(home) == {}

        # A run of the titles alone records its own markers.
        fresh_sandbox.admin(
            "consonance",
            "POST",
            f"/_sandbox/products/{product['product_id']}",
            json=edit | {"fullTitle": f"{product['title']} (third edition)"},
        )
        alone = ingest(fresh_sandbox, home, instance, assets=[title_metadata_snapshot])
        assert recorded_markers(instance, alone.run_id) == [(period, "consonance", "title_metadata_snapshot")]
        assert left_for_later(home) == {}
