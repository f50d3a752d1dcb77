"""Links against the sandboxes: backfill of every period (twice: nothing new), a crash mid-backfill,
and a cover refresh flowing through sensor and automation into Consonance and the audit trail."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import sqlalchemy as sa

from consodam_pipeline.audit.answer import edition_audit
from consodam_pipeline.defs.ingest.sensors import dam_change_sensor
from consodam_pipeline.defs.links.approved_links import approved_version_links
from consodam_pipeline.defs.links.consonance_links import consonance_asset_links
from consodam_pipeline.domain.periods import period_keys
from consodam_pipeline.store.ledger import Ledger
from consodam_tests.pipeline import (
    edition_tick,
    ingest,
    metadata,
    resources,
    store,
    sync_partitions,
    table,
    unnamed_events,
)
from consodam_tests.support import Sandbox

ALL = period_keys()
LINKS = [approved_version_links]
LINK_WRITES = [approved_version_links, consonance_asset_links]


def ledger_ids(home: Path) -> set[str]:
    with store(home).engine.connect() as conn:
        return set(conn.execute(sa.text("SELECT event_id FROM audit_ledger")).scalars())


def test_backfill_twice_adds_nothing_and_a_crash_loses_nothing(
    fresh_sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean, crashed = tmp_path / "clean", tmp_path / "crashed"
    with dg.instance_for_test() as instance:
        ingest(fresh_sandbox, clean, instance)
        first = sync_partitions(fresh_sandbox, clean, instance, ALL, LINKS)
        assert all(e.passed for e in first.get_asset_check_evaluations())
        events = ledger_ids(clean)
        assert metadata(first, "approved_version_links")["events_new_in_ledger"] == len(events) > 0
        links = pl.read_parquet(clean / "tables" / "approved_version_links")
        again = sync_partitions(fresh_sandbox, clean, instance, ALL, LINKS)
        assert metadata(again, "approved_version_links")["events_new_in_ledger"] == 0
        assert metadata(again, "approved_version_links")["periods_derived"] == 0  # nothing changed
        assert ledger_ids(clean) == events
        assert pl.read_parquet(clean / "tables" / "approved_version_links").equals(links)
    with dg.instance_for_test() as instance:
        ingest(fresh_sandbox, crashed, instance)
        original = Ledger.record

        def crash_midway(self: Ledger, conn: sa.Connection, batch: pl.DataFrame) -> int:
            original(self, conn, batch.head(len(events) // 2))
            raise RuntimeError("killed mid-backfill")

        monkeypatch.setattr(Ledger, "record", crash_midway)
        with pytest.raises(RuntimeError, match="killed mid-backfill"):
            sync_partitions(fresh_sandbox, crashed, instance, ALL, LINKS)
        assert ledger_ids(crashed) == set()  # the half-written batch was rolled back
        monkeypatch.setattr(Ledger, "record", original)
        sync_partitions(fresh_sandbox, crashed, instance, ALL, LINKS)
        assert ledger_ids(crashed) == events


def test_a_changed_period_is_derived_again_as_a_fresh_store_derives_it(tmp_path: Path) -> None:
    """A replay derives only the periods whose editions or versions changed, and leaves the ledger and the
    links exactly as a first backfill of a fresh store gives them."""
    sandbox = Sandbox(tmp_path / "sandbox", works=80, dirt_rate=0.0).start()
    kept, fresh = tmp_path / "kept", tmp_path / "fresh"
    try:
        with dg.instance_for_test() as instance:
            ingest(sandbox, kept, instance)
            first = sync_partitions(sandbox, kept, instance, ALL, LINKS)
            derived = metadata(first, "approved_version_links")["periods_derived"]
            cover_file, cover = next(
                (f, covers.row(0, named=True))
                for f in sorted((kept / "tables" / "approved_version_links").glob("*.parquet"))
                if (covers := pl.read_parquet(f).filter(pl.col("role") == "front_cover")).height
            )
            new = sandbox.approve_new_version(cover["asset_id"])
            ingest(sandbox, kept, instance)
            replay = sync_partitions(sandbox, kept, instance, ALL, LINKS)
            assert derived > 1 and metadata(replay, "approved_version_links")["periods_derived"] == 1
            ingest(sandbox, fresh, instance)
            sync_partitions(sandbox, fresh, instance, ALL, LINKS)
        assert ledger_ids(kept) == ledger_ids(fresh)
        for name in ("approved_version_links", f"approved_version_links/{cover_file.name}"):
            kept_links, fresh_links = (
                pl.read_parquet(h / "tables" / name).sort("product_id", "role") for h in (kept, fresh)
            )
            assert kept_links.equals(fresh_links)
        moved = pl.read_parquet(cover_file).filter(pl.col("product_id") == cover["product_id"])
        assert new["asset_id"] in moved["asset_id"].to_list()
    finally:
        sandbox.stop()


def test_a_cover_refresh_moves_the_link_and_keeps_the_old_one(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path / "sandbox", works=80, dirt_rate=0.0).start()
    home = tmp_path / "home"
    try:
        with dg.instance_for_test() as instance:
            ingest(sandbox, home, instance)
            sync_partitions(sandbox, home, instance, ALL, LINK_WRITES)
            tick = edition_tick(instance, sandbox, home)  # the first load's markers, answered above
            links = pl.read_parquet(home / "tables" / "approved_version_links")
            cover = links.filter((pl.col("role") == "front_cover") & (pl.col("scope") == "edition")).row(
                0, named=True
            )
            before_refresh = datetime.now(UTC)
            new = sandbox.approve_new_version(cover["asset_id"])
            probe = dam_change_sensor(
                dg.build_sensor_context(instance=instance, cursor=None, resources=resources(sandbox, home))
            )
            assert isinstance(probe, dg.SensorResult) and probe.run_requests
            ingest(sandbox, home, instance)
            tick = edition_tick(instance, sandbox, home, tick.cursor)
            periods = tick.periods
            assert len(periods) >= 1
            assert all(run.job_name == "consodam_editions" for run in tick.runs)  # the whole graph, one run
            result = sync_partitions(sandbox, home, instance, periods, LINK_WRITES)
            assert metadata(result, "consonance_asset_links")["written"] >= 1

            product = sandbox.graphql(
                "query($i: Int!) { product(id: $i) { work { supportingResources { imageRemoteUrl productIds } } } }",
                {"i": cover["product_id"]},
            )["data"]["product"]
            urls = [
                s["imageRemoteUrl"]
                for s in product["work"]["supportingResources"]
                if cover["product_id"] in s["productIds"]
            ]
            assert any(new["asset_id"] in u for u in urls)
            assert not any(cover["asset_id"] in u for u in urls)  # the old resource was replaced

            lineage = store(home)
            now = {link.role: link for link in edition_audit(lineage, cover["isbn13"]).live}
            newest = table(home, "dam_asset_inventory").filter(pl.col("asset_id") == new["asset_id"])
            assert (now["front_cover"].asset_id, now["front_cover"].version) == (
                new["asset_id"],
                newest["version"][0],  # the asset's newest version (one above any other, linked or not)
            )
            assert newest["version"][0] > cover["version"]
            assert now["front_cover"].written_by_runs
            then = {link.role: link for link in edition_audit(lineage, cover["isbn13"], before_refresh).live}
            assert (then["front_cover"].asset_id, then["front_cover"].version) == (
                cover["asset_id"],
                cover["version"],
            )
            history = edition_audit(lineage, cover["isbn13"]).history
            moves = [e for e in history if e["role"] == "front_cover" and e["event_type"].startswith("link_")]
            assert [e["event_type"] for e in moves][-3:] == [
                "link_superseded",
                "link_created",
                "link_written",
            ]
            assert datetime.fromisoformat(moves[-2]["occurred_at"]) >= before_refresh - timedelta(seconds=1)
            assert table(home, "title_metadata_snapshot").height > 0
    finally:
        sandbox.stop()


def test_a_deleted_version_closes_its_link_in_the_ledger_and_in_consonance(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path / "sandbox", works=60, dirt_rate=0.0).start()
    home = tmp_path / "home"
    try:
        with dg.instance_for_test() as instance:
            ingest(sandbox, home, instance)
            sync_partitions(sandbox, home, instance, ALL, LINK_WRITES)
            links = pl.read_parquet(home / "tables" / "approved_version_links")
            cover = links.filter((pl.col("role") == "front_cover") & (pl.col("scope") == "edition")).row(
                0, named=True
            )
            live = {x.role: x.asset_id for x in edition_audit(store(home), cover["isbn13"]).live}
            assert live["front_cover"] == cover["asset_id"]
            sandbox.admin("dam", "DELETE", f"/_sandbox/assets/{cover['asset_id']}")
            ingest(sandbox, home, instance, full_refresh=True)
            after = sync_partitions(sandbox, home, instance, ALL, LINK_WRITES)
            assert all(e.passed for e in after.get_asset_check_evaluations()), [
                (e.check_name, e.metadata) for e in after.get_asset_check_evaluations() if not e.passed
            ]
            assert metadata(after, "approved_version_links")["links_closed_version_deleted"] == 1
            again = sync_partitions(sandbox, home, instance, ALL, LINK_WRITES)
            assert metadata(again, "approved_version_links")["events_new_in_ledger"] == 0
        answer = edition_audit(store(home), cover["isbn13"])
        assert cover["asset_id"] not in {x.asset_id for x in answer.live}
        closing = [e for e in answer.history if e["event_type"] == "link_superseded"][-1]
        assert (closing["dam_asset_id"], closing["after"]) == (
            cover["asset_id"],
            {"reason": "version_deleted"},
        )
        then = edition_audit(
            store(home),
            cover["isbn13"],
            datetime.fromisoformat(closing["occurred_at"]) - timedelta(seconds=1),
        )
        assert {x.role: x.asset_id for x in then.live}["front_cover"] == cover["asset_id"]
        product = sandbox.graphql(
            "query($i: Int!) { product(id: $i) { work { supportingResources { imageRemoteUrl productIds } } } }",
            {"i": cover["product_id"]},
        )["data"]["product"]
        urls = [
            s["imageRemoteUrl"]
            for s in product["work"]["supportingResources"]
            if cover["product_id"] in s["productIds"]
        ]
        assert not any(cover["asset_id"] in u for u in urls)
        assert unnamed_events(home) == {}  # the closing and relinking events name the edition and version too
        with store(home).engine.connect() as conn:  # what the closing step asks, read both ways
            isbns = links["isbn13"].unique().to_list()
            in_one_pass = Ledger.linked_assets(conn, isbns)  # the slice is the whole ledger
            by_isbn = set().union(*(Ledger.linked_assets(conn, [isbn]) for isbn in isbns))
        assert in_one_pass == by_isbn and cover["asset_id"] in in_one_pass
    finally:
        sandbox.stop()
