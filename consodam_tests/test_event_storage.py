"""The shipped instance's event log (consodam_pipeline/event_storage.py): Dagster's SQLite files, its engines
and the index database's connection kept, nothing lost or hidden from another process, a run's log still
followed live, and every connection closed when the instance is."""

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from consodam_pipeline.defs.ingest.markers import edition_changes
from consodam_pipeline.domain.periods import period_keys
from consodam_pipeline.event_storage import ConsodamInstance, KeptEnginesSqliteEventLogStorage
from consodam_pipeline.sync.markers import change_markers

ROOT = Path(__file__).resolve().parents[1]
PERIODS = period_keys()[:30]


@dg.asset
def marks_periods(context: dg.AssetExecutionContext) -> None:
    for marker in change_markers({period: ["test"] for period in PERIODS}):
        context.log_event(marker)


@pytest.fixture
def shipped_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


@contextmanager
def connections_opened() -> Iterator[list[str]]:
    """The database file of every SQLite connection opened meanwhile, in this process."""
    opened: list[str] = []

    def record(dbapi_connection: sqlite3.Connection, _: object) -> None:
        database = dbapi_connection.execute("PRAGMA database_list").fetchone()[2]
        opened.append(Path(database).name)

    sa.event.listen(sa.Engine, "connect", record)
    yield opened
    sa.event.remove(sa.Engine, "connect", record)


def open_files(name: str) -> int:
    fds = Path("/proc/self/fd")
    return sum(1 for fd in fds.iterdir() if os.path.basename(os.path.realpath(fd)) == name)


def test_the_shipped_instance_keeps_its_connections_and_loses_no_event(shipped_home: Path) -> None:
    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance, ConsodamInstance)
        assert isinstance(instance.event_log_storage, KeptEnginesSqliteEventLogStorage)
        assert (shipped_home / "history" / "runs" / "index.db").exists()  # Dagster's own files
        with connections_opened() as opened:
            for _ in range(2):
                result = dg.materialize(
                    [marks_periods, edition_changes], selection=[marks_periods], instance=instance
                )
        assert result.success
        # The index database: one kept connection for the two runs' ~80 asset and step events (and two
        # Dagster opens for a table check of its own), not one per event; a run's own database is opened
        # per event, as Dagster does (its webserver watches that file).
        assert opened.count("index.db") <= 3
        assert opened.count(f"{result.run_id}.db") >= len(PERIODS)
        records = instance.fetch_materializations(edition_changes.key, limit=1000).records
        assert sorted(str(r.partition_key) for r in records if r.run_id == result.run_id) == sorted(PERIODS)

        # Another process (the webserver, the daemon) reads every event at once.
        count = (
            "import dagster as dg; i = dg.DagsterInstance.get();"
            "print(len(i.fetch_materializations(dg.AssetKey('edition_changes'), limit=1000).records))"
        )
        read = subprocess.run([sys.executable, "-c", count], capture_output=True, text=True, check=True)
        assert read.stdout.strip() == str(2 * len(PERIODS))
        assert open_files("index.db") >= 1  # kept open (SQLite may hold a closed connection's file too)
    assert open_files("index.db") == 0  # closed with the instance


def test_a_run_log_is_followed_as_it_is_written(shipped_home: Path) -> None:
    """The webserver shows a running run's events as they come: it watches the run's database file."""
    with dg.DagsterInstance.get() as instance:
        storage = instance.event_log_storage
        run_id = "a" * 8 + "-0000-0000-0000-000000000000"
        seen: list[str] = []
        arrived = threading.Event()

        def follow(entry: dg.EventLogEntry, _: str) -> None:
            seen.append(entry.user_message)
            if len(seen) == 4:
                arrived.set()

        storage.store_event(log_line(run_id, "first"))  # the run's database exists before it is watched
        storage.watch(run_id, None, follow)
        try:
            for text in ("second", "third", "fourth"):
                storage.store_event(log_line(run_id, text))
                time.sleep(0.2)
            assert arrived.wait(20), f"the watcher saw {seen}"
        finally:
            storage.end_watch(run_id, follow)
        assert seen == ["first", "second", "third", "fourth"]


def log_line(run_id: str, text: str) -> dg.EventLogEntry:
    return dg.EventLogEntry(
        error_info=None, level="INFO", user_message=text, run_id=run_id, timestamp=time.time()
    )


def test_an_instance_read_from_its_folder_keeps_its_files_there(
    shipped_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tool that opens the instance by its folder, with DAGSTER_HOME elsewhere or unset, reads that folder."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "elsewhere"))
    with dg.DagsterInstance.from_config(str(shipped_home)) as instance:
        dg.materialize([marks_periods, edition_changes], selection=[marks_periods], instance=instance)
    monkeypatch.delenv("DAGSTER_HOME")
    with dg.DagsterInstance.from_config(str(shipped_home)) as instance:
        assert isinstance(instance.event_log_storage, KeptEnginesSqliteEventLogStorage)
        assert len(instance.fetch_materializations(edition_changes.key, limit=1000).records) == len(PERIODS)
    assert not (tmp_path / "elsewhere").exists()
