"""Automation does the whole job at once: a change in either system requests one run per affected range of
periods, covering every edition asset, and the change reaches the other system in that run; a write left
pending by a fault is asked for again, with no other change, once its back-off is over."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from consodam_pipeline.derived.restrictions import RIGHTS_FIELD
from consodam_pipeline.domain.periods import contiguous_ranges, period_keys
from consodam_pipeline.sync import edition_requests
from consodam_tests.pipeline import (
    edition_assets,
    edition_tick,
    ingest,
    run_requested,
    store,
    table,
)
from consodam_tests.support import Sandbox
from consodam_tests.test_rights_flow import dam_fields, periods_of
from consodam_tests.test_write_flow import assert_consonance_matches_links, assert_dam_matches_desired

EVERY_EDITION_ASSET = {a.key.to_user_string() for a in edition_assets()}


def materialized(results: list[dg.ExecuteInJobResult]) -> set[str]:
    return {
        e.asset_key.to_user_string()
        for r in results
        for e in r.get_asset_materialization_events()
        if e.asset_key is not None
    }


def test_a_change_requests_one_run_that_reaches_the_other_system(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path / "sandbox", works=60, dirt_rate=0.0).start()
    home = tmp_path / "home"
    try:
        with dg.instance_for_test() as instance:
            ingest(sandbox, home, instance)
            load = edition_tick(instance, sandbox, home)
            assert len(load.runs) == 1 and load.periods == period_keys()  # the first load: one run
            first = run_requested(instance, sandbox, home, load.runs)
            assert all(r.success for r in first) and materialized(first) >= EVERY_EDITION_ASSET - {
                "edition_changes"
            }

            # A reviewer approves a new cover version in the DAM; a rights manager narrows a title's rights.
            links = pl.read_parquet(home / "tables" / "approved_version_links")
            cover = links.filter((pl.col("role") == "front_cover") & (pl.col("scope") == "edition")).row(
                0, named=True
            )
            new = sandbox.approve_new_version(cover["asset_id"])
            titles = table(home, "title_metadata_snapshot")
            narrowed = titles.filter(pl.col("for_sale_worldwide")).row(0, named=True)
            sandbox.admin(
                "consonance",
                "POST",
                f"/_sandbox/products/{narrowed['product_id']}",
                json={"isForSaleWorldwide": False, "forSaleCountryCodes": ["GB", "IE"]},
            )
            ingest(sandbox, home, instance)

            tick = edition_tick(instance, sandbox, home, load.cursor)
            affected = {periods_of(home, cover["work_id"]), periods_of(home, narrowed["work_id"])}
            assert set(tick.periods) == affected
            assert len(tick.runs) == len(contiguous_ranges(affected))  # one per range
            assert {r.job_name for r in tick.runs} == {"consodam_editions"}
            results = run_requested(instance, sandbox, home, tick.runs)
            assert all(r.success for r in results)
            assert materialized(results) >= {
                "approved_version_links",
                "consonance_asset_links",
                "rights_matrix",
                "dam_access_restrictions",
                "dam_title_tags",
                "title_asset_packages",
                "consonance_stage_advances",
                "dam_review_tasks",
                "consonance_production_files",
                "launch_collections",
            }

            # In that run: Consonance links the new version, the DAM shows the narrowed rights.
            live = assert_consonance_matches_links(sandbox, home)
            assert new["asset_id"] in live["asset_id"].to_list()
            assert cover["asset_id"] not in live["asset_id"].to_list()
            work_assets = table(home, "dam_asset_inventory").filter(
                (pl.col("work_id") == narrowed["work_id"]) & pl.col("is_latest")
            )["asset_id"]
            countries = {dam_fields(sandbox, a)[0].get(RIGHTS_FIELD + "COUNTRIES") for a in work_assets}
            assert countries - {None} == {
                "GB IE"
            }  # every restricted version of the work (others stay internal)
            assert_dam_matches_desired(sandbox, home, instance)
            assert edition_tick(instance, sandbox, home, tick.cursor).runs == []  # nothing more to do
    finally:
        sandbox.stop()


def test_a_write_left_pending_is_written_by_the_next_run_with_no_other_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sandbox = Sandbox(tmp_path / "sandbox", works=30, dirt_rate=0.0).start()
    home = tmp_path / "home"
    try:
        with dg.instance_for_test() as instance:
            ingest(sandbox, home, instance)
            load = edition_tick(instance, sandbox, home)
            inventory = table(home, "dam_asset_inventory").filter(pl.col("is_latest") & ~pl.col("orphan_tag"))
            victim = inventory.filter(pl.col("isbn13").is_not_null()).sort("asset_id").row(0, named=True)
            period = periods_of(home, victim["work_id"])
            # Every edit of one DAM version fails while the first load writes (the DAM refuses it).
            sandbox.fault("dam", mode="503", rate=1.0, path_prefix=f"/otmmapi/v6/assets/{victim['asset_id']}")
            run_requested(instance, sandbox, home, load.runs)
            sandbox.clear_faults()
            pending = store(home).bookkeeping.pending_periods()
            assert [p.period for p in pending] == [period] and pending[0].items >= 1

            tick = edition_tick(instance, sandbox, home, load.cursor)
            assert tick.runs == []  # nothing changed, and the back-off since the failure is not over
            monkeypatch.setattr(edition_requests, "FIRST_RETRY_S", 0.0)  # …now it is
            tick = edition_tick(instance, sandbox, home, tick.cursor)
            assert tick.periods == [period]
            assert tick.runs[0].tags["consodam/trigger"] == "pending writes"
            assert all(r.success for r in run_requested(instance, sandbox, home, tick.runs))
            assert store(home).bookkeeping.pending_periods() == []
            assert_dam_matches_desired(sandbox, home, instance)
            assert edition_tick(instance, sandbox, home, tick.cursor).runs == []
    finally:
        sandbox.stop()


def test_the_backfill_range_setting_splits_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    from consodam_pipeline.sync.partitions import backfill_policy

    everything = period_keys()
    assert len(edition_requests.requests(everything, [], marker=1)) == 1  # default: one run
    assert backfill_policy() == dg.BackfillPolicy.single_run()
    monkeypatch.setenv("CONSODAM_BACKFILL_RANGE", "30")
    runs = edition_requests.requests(everything, [], marker=1)
    spans = [edition_requests.run_periods(r.tags, everything) for r in runs]
    assert [len(s) for s in spans] == [30, 30, 30, len(everything) - 90]
    assert [p for s in spans for p in s] == everything  # disjoint, in order, nothing left out
    assert backfill_policy() == dg.BackfillPolicy.multi_run(30)
    monkeypatch.setenv("CONSODAM_BACKFILL_RANGE", "a dozen")
    with pytest.raises(ValueError, match="CONSODAM_BACKFILL_RANGE='a dozen'"):
        backfill_policy()


def test_a_small_run_runs_in_its_own_process_and_a_backfill_spreads_its_steps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What the sensors ask for is valid run config for the code location's jobs: a change's runs (an ingest,
    the editions of a few periods) run their steps in the run's process, a backfill in step processes."""
    from consodam_pipeline.definitions import defs
    from consodam_pipeline.sync.partitions import IN_PROCESS, SMALL_RUN_PERIODS, small_run_config

    definitions = defs()
    editions = definitions.resolve_job_def("consodam_editions")
    everything = period_keys()
    few = edition_requests.requests(everything[:SMALL_RUN_PERIODS], [], marker=1)
    backfill = edition_requests.requests(everything, [], marker=1)
    assert [r.run_config for r in few] == [IN_PROCESS] and [r.run_config for r in backfill] == [{}]
    for run in [*few, *backfill]:
        dg.validate_run_config(editions, run.run_config)
    ingest_job = definitions.resolve_implicit_global_asset_job_def()
    dg.validate_run_config(ingest_job, small_run_config())
    assert editions.executor_def.name == "multiprocess"
    # With celery the edition job's steps go to the workers whatever the size; an ingest stays in process.
    monkeypatch.setenv("CONSODAM_CELERY_BROKER", "redis://127.0.0.1:1/0")
    assert [r.run_config for r in edition_requests.requests(everything[:1], [], marker=1)] == [{}]
    assert small_run_config() == IN_PROCESS
