"""Runs that overlap never conflict: two runs of the whole edition graph over the same periods at once, on
SQLite and on PostgreSQL, both succeed, each slice is written by one of them only (the other finds it right),
and what each system holds afterwards is exact — one resource per live link, every DAM field as desired,
no review task twice, and no write twice in the ledger."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import dagster as dg
import httpx
import polars as pl
import pytest
import sqlalchemy as sa

from consodam_pipeline.domain.periods import period_keys
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.verify import consonance_holdings, holdings
from consodam_tests.pipeline import ingest, store
from consodam_tests.support import Sandbox
from consodam_tests.test_write_flow import assert_consonance_matches_links, assert_dam_matches_desired

WRITERS = (
    "dam_access_restrictions",
    "dam_title_tags",
    "consonance_asset_links",
    "consonance_stage_advances",
    "dam_review_tasks",
    "consonance_production_files",
    "launch_collections",
)
RUNNER = """
import json, sys
from pathlib import Path
import dagster as dg
from consodam_pipeline.domain.periods import period_keys
from consodam_pipeline.sync.partitions import range_tags
from consodam_tests.pipeline import INGEST, edition_assets, metadata, resources
from consodam_tests.support import Sandbox

sandbox = Sandbox(Path(sys.argv[1]), consonance_port=int(sys.argv[2]), dam_port=int(sys.argv[3]))
keys = json.loads(sys.argv[7]) if len(sys.argv) > 7 else period_keys()
result = dg.materialize(
    [*INGEST, *edition_assets()], selection=edition_assets()[1:],
    resources=resources(sandbox, Path(sys.argv[4]), store_url=sys.argv[5]), tags=range_tags(keys),
    raise_on_error=False,
)
counts = ("created", "updated", "removed", "duplicates_removed")
written = {a: sum(metadata(result, a).get(k, 0) for k in counts) for a in json.loads(sys.argv[6])}
print(json.dumps({"success": result.success, "written": written}))
"""


def run_at_once(
    sandbox: Sandbox, home: Path, store_url: str, ranges: list[list[str]]
) -> list[dict[str, object]]:
    """A process per range of periods, started together, each materializing its range of the edition graph."""
    args = [str(sandbox.data_dir), str(sandbox.consonance_port), str(sandbox.dam_port), str(home), store_url]
    children = [
        subprocess.Popen(
            [sys.executable, "-c", RUNNER, *args, json.dumps(list(WRITERS)), json.dumps(keys)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for keys in ranges
    ]
    outcomes = []
    for child in children:
        out, err = child.communicate(timeout=600)
        assert child.returncode == 0, err[-3000:]
        outcomes.append(json.loads(out.strip().splitlines()[-1]))
    return outcomes


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_overlapping_runs_write_each_slice_once(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    sandbox = Sandbox(tmp_path / "sandbox", works=30, dirt_rate=0.0).start()
    home = tmp_path / "home"
    store_url = (
        f"sqlite:///{home / 'lineage.db'}" if backend == "sqlite" else request.getfixturevalue("pg_database")
    )
    try:
        with dg.instance_for_test() as instance:
            ingest(sandbox, home, instance, store_url=store_url)
            outcomes = run_at_once(sandbox, home, store_url, [period_keys(), period_keys()])
            assert all(o["success"] for o in outcomes), outcomes
            for asset in WRITERS:  # one run wrote each slice; the other found it already right
                counts = sorted(o["written"][asset] for o in outcomes)  # type: ignore[index]
                assert counts[0] == 0, (asset, counts)
            assert sum(o["written"]["dam_access_restrictions"] for o in outcomes) > 0  # type: ignore[index]
            assert_consonance_matches_links(sandbox, home)
            assert_dam_matches_desired(sandbox, home, instance)
            tasks = httpx.get(
                f"{sandbox.dam_url}/otmmapi/v6/reviewtasks",
                headers={"Authorization": f"Bearer {sandbox.dam_token()}"},
            ).json()["review_tasks"]
            keys = Counter(
                (t["kind"], t["asset_id"], t["isbn"], t["milestone"], t["requirement"]) for t in tasks
            )
            assert [k for k, n in keys.items() if n > 1] == []
            engine = store(home).engine if backend == "sqlite" else sa.create_engine(store_url)
            schema = "" if backend == "sqlite" else "consodam."
            with engine.connect() as conn:
                twice = conn.execute(
                    sa.text(
                        f"SELECT event_type, dam_asset_id, isbn13, role, count(*) FROM {schema}audit_ledger "
                        "WHERE event_type IN ('restriction_applied', 'tags_written', 'link_written', "
                        "'package_referenced', 'review_task_opened', 'published_to_collection') "
                        "GROUP BY event_type, dam_asset_id, isbn13, role HAVING count(*) > 1"
                    )
                ).all()
            assert twice == []
    finally:
        sandbox.stop()


def review_tasks(sandbox: Sandbox) -> Counter[tuple[str, ...]]:
    tasks = httpx.get(
        f"{sandbox.dam_url}/otmmapi/v6/reviewtasks",
        headers={"Authorization": f"Bearer {sandbox.dam_token()}"},
    ).json()["review_tasks"]
    return Counter(
        (t["kind"], t["asset_id"], t["isbn"], t["milestone"], t["requirement"], t["status"]) for t in tasks
    )


def ledger_facts(store_url: str) -> Counter[tuple[object, ...]]:
    """What each ledger row says happened, to what (moments and the ids a system gives what consodam
    creates left out: they differ between two systems)."""
    engine = sa.create_engine(store_url)
    try:
        with engine.connect() as conn:
            schema = "consodam." if engine.dialect.name == "postgresql" else ""
            rows = conn.execute(
                sa.text(
                    "SELECT event_type, isbn13, work_id, dam_asset_id, dam_version, role "
                    f"FROM {schema}audit_ledger"
                )
            ).all()
    finally:
        engine.dispose()
    # A title sheet is a version consodam creates: the DAM names it, in the order the runs create them.
    return Counter((*r[:3], "(created)" if r[5] == "title_sheet" else r[3], *r[4:]) for r in rows)


def tables(home: Path) -> dict[str, pl.DataFrame]:
    """The computed tables, sorted, without the write reports' handles and moments."""
    out = {}
    for name in ("rights_matrix", "approved_version_links", "title_asset_packages"):
        frame = pl.read_parquet(home / "tables" / name)
        out[name] = frame.sort(frame.columns)
    for name in ("dam_access_restrictions", "dam_title_tags", "consonance_asset_links"):
        frame = pl.read_parquet(home / "tables" / name).select("key", "written")
        out[name] = frame.sort("key")
    return out


def fresh_database(pg_url: str, name: str) -> str:
    """A database of its own on the test cluster."""
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return pg_url.rsplit("/", 1)[0] + f"/{name}"


def test_four_ranges_at_once_leave_what_one_run_leaves(tmp_path: Path, pg_url: str) -> None:
    """Scale-out: the backfill as four concurrent runs of disjoint ranges of periods (as a cluster runs
    them with CONSODAM_BACKFILL_RANGE) leaves exactly the ledger, tables and system state one run leaves."""
    keys = period_keys()
    quarter = -(-len(keys) // 4)
    ranges = [keys[i : i + quarter] for i in range(0, len(keys), quarter)]
    assert len(ranges) == 4 and sum(map(len, ranges)) == len(keys)
    leaves = {}
    for label, split in (("one run", [keys]), ("four ranges", ranges)):
        sandbox = Sandbox(tmp_path / label / "sandbox", works=40, dirt_rate=0.0).start()
        home = tmp_path / label / "home"
        store_url = fresh_database(pg_url, f"scale_{tmp_path.name[-12:]}_{len(split)}".lower())
        try:
            with dg.instance_for_test() as instance:
                ingest(sandbox, home, instance, store_url=store_url)
                outcomes = run_at_once(sandbox, home, store_url, split)
                assert all(o["success"] for o in outcomes), outcomes
                found = holdings(sandbox, home / "tables", LineageStoreResource(url=store_url).store())
                assert found.exact and found.pending == 0, found.line()
                leaves[label] = (
                    consonance_holdings(sandbox),
                    review_tasks(sandbox),
                    ledger_facts(store_url),
                    tables(home),
                )
        finally:
            sandbox.stop()
    one, four = leaves["one run"], leaves["four ranges"]
    assert one[0] == four[0] and sum(one[0].values()) > 0  # Consonance: the same resources
    assert one[1] == four[1]  # the DAM's review tasks
    assert one[2] == four[2] and sum(one[2].values()) > 0  # the ledger
    for name in one[3]:
        assert one[3][name].equals(four[3][name]), name
