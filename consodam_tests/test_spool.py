"""The ingest batch's spool: what is written to disk comes back whole, in key order, last copy winning."""

import os
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import polars as pl

from consodam_pipeline.store.history import subjects_of
from consodam_pipeline.sync.dam_ingest import VERSION_SCHEMA, typed_inventory
from consodam_pipeline.sync.snapshot import IngestBatch, render_payloads
from consodam_pipeline.sync.spool import Spool, sweep_stale_spools

SCHEMA: dict[str, pl.DataType] = {"asset_id": pl.String(), "version": pl.Int64(), "name": pl.String()}


def page(*rows: tuple[str, int, str]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


def test_spool_reads_back_every_row_by_key_range_in_key_order() -> None:
    spool = Spool(SCHEMA, "asset_id", flush_rows=3)
    spool.add(page(("b2", 1, "x"), ("a1", 1, "y"), ("c9", 1, "z")))
    spool.add(page(("a0", 1, "w"), ("b1", 1, "v")))
    try:
        everything = spool.scan().collect().sort("asset_id")
        assert everything["asset_id"].to_list() == ["a0", "a1", "b1", "b2", "c9"]
        assert list(everything.schema) == list(SCHEMA)
        assert sorted(spool.key_range("b")["asset_id"].to_list()) == ["b1", "b2"]
        assert spool.key_range("z").height == 0
        assert len(list(spool.directory.iterdir())) > 0
    finally:
        spool.close()
    assert not spool.directory.exists()


def test_a_key_fetched_twice_keeps_its_last_copy() -> None:
    with IngestBatch(complete=True, key_column="asset_id", schema=SCHEMA) as batch:
        batch.add_frame(page(("a1", 1, "first"), ("b1", 1, "only")))
        batch.add_frame(page(("a1", 1, "second")))
        hashes = batch.take_hashes()
        assert batch.repeated_keys and batch.hashes == []
        records = batch.records().collect().sort("asset_id")
        assert records["name"].to_list() == ["second", "only"]
        to_open = hashes.filter(pl.col("record_key").is_last_distinct()).sort("record_key")
        rendered = pl.concat(batch.payloads_for(to_open))
        assert rendered["record_key"].to_list() == ["a1", "b1"]
        assert rendered["payload"].to_list() == render_payloads(records).to_list()
        assert rendered["content_hash"].to_list() == to_open["content_hash"].to_list()
        directory = batch.spool.directory
    assert batch.fetched == 3
    assert not directory.exists()


def test_payloads_come_in_key_order_across_key_ranges() -> None:
    keys = [f"{c}{n}" for c in "fedcba9876543210" for n in range(3)]
    with IngestBatch(complete=True, key_column="asset_id", schema=SCHEMA) as batch:
        for start in range(0, len(keys), 7):
            batch.add_frame(page(*[(k, 1, k.upper()) for k in keys[start : start + 7]]))
        to_open = batch.take_hashes().sort("record_key")
        rendered = pl.concat(batch.payloads_for(to_open))
    assert rendered["record_key"].to_list() == sorted(keys)


def test_each_opened_record_names_the_subject_its_payload_names() -> None:
    """The ISBN and work a stored record is about (what the audit finds it by) come with each block of
    rows to open, as text, and are what the stored payload itself says; a schema without them names none."""
    versions = pl.DataFrame(
        [
            {"asset_id": "a1", "version": 1, "isbn13": "9780306406157", "work_id": 7},
            {"asset_id": "b1", "version": 2, "isbn13": None, "work_id": 7},
            {"asset_id": "c1", "version": 1, "isbn13": None, "work_id": None},
        ],
        schema={"asset_id": pl.String(), "version": pl.Int64(), "isbn13": pl.String(), "work_id": pl.Int64()},
    )
    with IngestBatch(complete=True, key_column="asset_id", schema=versions.schema) as batch:
        batch.add_frame(versions)
        opened = pl.concat(batch.payloads_for(batch.take_hashes().sort("record_key")))
    named = opened.select("record_key", "isbn13", "work_id")
    assert named.rows() == [("a1", "9780306406157", "7"), ("b1", None, "7"), ("c1", None, None)]
    assert subjects_of(opened).equals(subjects_of(opened.drop("isbn13", "work_id")))
    with IngestBatch(complete=True, key_column="asset_id", schema=SCHEMA) as batch:
        batch.add_frame(page(("a1", 1, "x")))
        opened = pl.concat(batch.payloads_for(batch.take_hashes()))
    assert subjects_of(opened).rows() == [("a1", None, None)]


def test_typed_inventory_marks_the_newest_version_of_each_asset() -> None:
    rows = [
        {"asset_id": "v1", "original_asset_id": "A", "version": 1, "license_from": "2024-01-31"},
        {"asset_id": "v3", "original_asset_id": "A", "version": 3, "license_from": None},
        {"asset_id": "v2", "original_asset_id": "A", "version": 2, "license_from": "not a day"},
        {"asset_id": "w1", "original_asset_id": "B", "version": 1, "license_from": None},
    ]
    frame = pl.DataFrame(
        [{name: row.get(name) for name in VERSION_SCHEMA} for row in rows], schema=VERSION_SCHEMA
    )
    typed = typed_inventory(frame.lazy()).collect()
    assert dict(zip(typed["asset_id"], typed["is_latest"], strict=True)) == {
        "v1": False,
        "v3": True,
        "v2": False,
        "w1": True,
    }
    assert typed["license_from"].to_list() == [date(2024, 1, 31), None, None, None]


def test_stale_spools_of_dead_processes_are_swept(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(dead.stdout)
    left = tmp_path / f"consodam-spool-{dead_pid}-abc"
    recent = tmp_path / f"consodam-spool-{dead_pid}-def"
    ours = tmp_path / f"consodam-spool-{os.getpid()}-ghi"
    unrelated = tmp_path / "consodam-spool-notapid"
    for folder in (left, recent, ours, unrelated):
        folder.mkdir()
        (folder / "00000-000061.arrow").write_bytes(b"x")
    hours_ago = time.time() - 7 * 3600
    for folder in (left, ours, unrelated):
        os.utime(folder, (hours_ago, hours_ago))
    assert sweep_stale_spools(tmp_path) == [left]
    assert not left.exists() and recent.exists() and ours.exists() and unrelated.exists()
