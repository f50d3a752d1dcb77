"""The lineage store on SQLite and on PostgreSQL (a `consodam` schema)."""

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from consodam_pipeline.store import history
from consodam_pipeline.store.access import reading_engine, store_setting
from consodam_pipeline.store.bulk import bulk_insert
from consodam_pipeline.store.engine import (
    MIGRATIONS,
    PG_SCHEMA,
    SQLITE_CACHE_KIB,
    SQLITE_PAGE_SIZE,
    connect_store,
    upgrade,
)
from consodam_pipeline.store.ledger import AuditEvent
from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.store.schema import STORE_REVISION, audit_ledger, metadata, record_subject
from consodam_pipeline.sync.plan import state_hash

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def records(**payloads: str) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "record_key": list(payloads),
            "content_hash": [state_hash(p) for p in payloads.values()],
            "payload": list(payloads.values()),
        }
    )


@pytest.fixture
def store(store_url: str) -> LineageStore:
    return LineageStore(connect_store(store_url))


def test_tables_live_where_configured(store: LineageStore) -> None:
    names = set(
        sa.inspect(store.engine).get_table_names(
            schema=None if store.engine.dialect.name == "sqlite" else PG_SCHEMA
        )
    )
    assert {"record_history", "audit_ledger", "sync_cursor", "quarantine", "alembic_version"} <= names


def test_migrations_are_idempotent(store_url: str) -> None:
    connect_store(store_url)
    engine = connect_store(store_url)
    with engine.connect() as conn:
        table = "alembic_version" if engine.dialect.name == "sqlite" else f"{PG_SCHEMA}.alembic_version"
        assert conn.execute(sa.text(f"SELECT version_num FROM {table}")).scalars().all() == [STORE_REVISION]
    newest = max(p.name[:4] for p in (MIGRATIONS / "versions").glob("0*.py"))
    assert newest == STORE_REVISION  # what the code reads is the newest migration


def test_schema_and_migrations_agree(store_url: str) -> None:
    """store/schema.py (what the code reads and writes) and the migrations (what a store holds) describe
    the same tables, columns and indexes."""
    engine = connect_store(store_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"include_schemas": False, "compare_type": True, "compare_server_default": False}
        )
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text(f"SET search_path TO {PG_SCHEMA}"))
        differences = [d for d in compare_metadata(context, metadata) if not _is_alembic_table(d)]
    assert differences == []


def _is_alembic_table(difference: object) -> bool:
    return "alembic_version" in repr(difference)


def test_snapshot_history_and_as_of(store: LineageStore) -> None:
    with store.engine.begin() as conn:
        first = store.history.apply_snapshot(
            conn,
            "edition",
            records(a='{"v": "a1aaaaaa"}', b='{"v": "b1bbbbbb"}'),
            observed_at=T0,
            complete=True,
        )
    assert sorted(first.added) == ["a", "b"]
    with store.engine.begin() as conn:
        again = store.history.apply_snapshot(
            conn,
            "edition",
            records(a='{"v": "a1aaaaaa"}', b='{"v": "b1bbbbbb"}'),
            observed_at=T0 + timedelta(hours=1),
            complete=True,
        )
    assert again.touched == 0 and again.unchanged == 2
    with store.engine.begin() as conn:
        later = store.history.apply_snapshot(
            conn, "edition", records(a='{"v": "a2aaaaaa"}'), observed_at=T0 + timedelta(days=1), complete=True
        )
    assert later.changed == ["a"] and later.removed == ["b"]
    assert store.history.as_of("edition", "a", T0 + timedelta(hours=12)) == {"v": "a1aaaaaa"}
    assert store.history.as_of("edition", "a", T0 + timedelta(days=2)) == {"v": "a2aaaaaa"}
    assert store.history.as_of("edition", "b", T0 + timedelta(hours=12)) == {"v": "b1bbbbbb"}
    assert store.history.as_of("edition", "b", T0 + timedelta(days=2)) is None
    assert store.history.as_of("edition", "a", T0 - timedelta(days=1)) is None
    history = store.history.versions("edition", "a")
    assert [h["valid_to"] is None for h in history] == [False, True]
    assert history[0]["valid_to"] == history[1]["valid_from"]


def test_incremental_batches_never_close_unseen_records(store: LineageStore) -> None:
    with store.engine.begin() as conn:
        store.history.apply_snapshot(
            conn,
            "edition",
            records(a='{"v": "a1aaaaaa"}', b='{"v": "b1bbbbbb"}'),
            observed_at=T0,
            complete=True,
        )
        diff = store.history.apply_snapshot(
            conn, "edition", records(a='{"v": "a2aaaaaa"}'), observed_at=T0, complete=False
        )
    assert diff.changed == ["a"] and diff.removed == []
    assert store.history.count_open("edition") == 2


def test_keep_open_protects_quarantined_records(store: LineageStore) -> None:
    with store.engine.begin() as conn:
        store.history.apply_snapshot(
            conn,
            "edition",
            records(a='{"v": "a1aaaaaa"}', b='{"v": "b1bbbbbb"}'),
            observed_at=T0,
            complete=True,
        )
        diff = store.history.apply_snapshot(
            conn, "edition", records(a='{"v": "a1aaaaaa"}'), observed_at=T0, complete=True, keep_open=["b"]
        )
    assert diff.removed == []
    assert store.history.count_open("edition") == 2


def test_one_open_version_per_record_is_enforced(store: LineageStore) -> None:
    from consodam_pipeline.store.schema import record_history

    row = {
        "entity": "e",
        "record_key": "k",
        "content_hash": "h",
        "payload": "{}",
        "valid_from": datetime(2026, 1, 1),
        "valid_to": None,
        "recorded_at": datetime(2026, 1, 1),
    }
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(record_history.insert(), [row, {**row, "content_hash": "h2"}])


def test_cursor_commits_with_its_rows_or_not_at_all(store: LineageStore) -> None:
    with pytest.raises(RuntimeError), store.engine.begin() as conn:
        store.history.apply_snapshot(
            conn, "edition", records(a='{"v": "a1aaaaaa"}'), observed_at=T0, complete=True
        )
        store.cursors.set(conn, "consonance", "2026-01-01")
        raise RuntimeError("crash between the write and the commit")
    assert store.cursors.get("consonance") is None
    assert store.history.count_open("edition") == 0
    with store.engine.begin() as conn:
        store.history.apply_snapshot(
            conn, "edition", records(a='{"v": "a1aaaaaa"}'), observed_at=T0, complete=True
        )
        store.cursors.set(conn, "consonance", "2026-01-01")
    assert store.cursors.get("consonance") == "2026-01-01"
    with store.engine.begin() as conn:
        store.cursors.set(conn, "consonance", "2026-01-02")
    assert store.cursors.get("consonance") == "2026-01-02"


def test_ledger_is_append_only_and_deduplicated(store: LineageStore) -> None:
    approved = AuditEvent(
        "version_approved",
        T0,
        isbn13="9780306406157",
        dam_asset_id="a" * 40,
        dam_version=2,
        role="front_cover",
        actor="editor@publisher.example",
        after={"status": "approved"},
        run_id="run-1",
    )
    replay = AuditEvent(**{**approved.__dict__, "run_id": "run-2"})
    assert approved.event_id == replay.event_id
    with store.engine.begin() as conn:
        assert store.ledger.record(conn, [approved, approved]) == 1
    with store.engine.begin() as conn:
        assert store.ledger.record(conn, [replay]) == 0
    events = store.ledger.events_for_isbn("9780306406157")
    assert len(events) == 1 and events[0]["run_id"] == "run-1" and events[0]["dam_version"] == 2
    assert store.ledger.events_for_isbn("9780306406157", until=T0 - timedelta(seconds=1)) == []


def _ledger_indexes(store: LineageStore) -> set[str]:
    schema = None if store.engine.dialect.name == "sqlite" else PG_SCHEMA
    return {str(i["name"]) for i in sa.inspect(store.engine).get_indexes("audit_ledger", schema=schema)}


def test_a_first_backfill_builds_the_ledger_indexes_once_and_a_failed_one_keeps_them(
    store: LineageStore,
) -> None:
    """A publisher's first backfill appends with the ledger's secondary indexes deferred (SQLite): the
    events and the indexes are there afterwards, answered by ISBN; a backfill that fails leaves the ledger
    as it was, indexes included."""
    indexes = _ledger_indexes(store)
    assert {"ux_audit_event", "ix_audit_isbn_time", "ix_audit_asset", "ix_audit_work_time"} <= indexes
    events = [
        AuditEvent(
            "version_approved",
            T0 + timedelta(minutes=n),
            isbn13=f"978030640{n:04d}",
            dam_version=n,
            dam_asset_id="a" * 40,
            after={"n": n},
        )
        for n in range(50)
    ]
    seen: list[set[str]] = []
    with pytest.raises(RuntimeError), store.engine.begin() as conn, store.ledger.backfill(conn, editions=50):
        store.ledger.record(conn, events[:10])
        raise RuntimeError("killed mid-backfill")
    assert _ledger_indexes(store) == indexes and store.ledger.size() == 0
    with store.engine.begin() as conn, store.ledger.backfill(conn, editions=50):
        assert store.ledger.record(conn, events) == 50
        seen.append({str(i["name"]) for i in sa.inspect(conn).get_indexes("audit_ledger", schema=None)})
    if store.engine.dialect.name == "sqlite":
        assert not seen[0] & {"ux_audit_event", "ix_audit_isbn_time", "ix_audit_time"}  # deferred
    assert _ledger_indexes(store) == indexes
    assert [e["dam_version"] for e in store.ledger.events_for_isbn("9780306400007")] == [7]
    # The ledger now holds an event per edition: a backfill over it appends with its indexes in place.
    with store.engine.begin() as conn, store.ledger.backfill(conn, editions=50):
        assert store.ledger.record(conn, events) == 0
        assert "ix_audit_isbn_time" in {str(i["name"]) for i in sa.inspect(conn).get_indexes("audit_ledger")}


def _subject_index_names(conn: sa.Connection) -> set[str]:
    schema = None if conn.dialect.name == "sqlite" else PG_SCHEMA
    return {str(i["name"]) for i in sa.inspect(conn).get_indexes("record_subject", schema=schema)}


def _versions(keys: range, isbn: str) -> pl.DataFrame:
    payloads = [json.dumps({"asset_id": f"a{n:03d}", "isbn13": isbn, "work_id": n % 3}) for n in keys]
    return pl.DataFrame(
        {
            "record_key": [f"a{n:03d}" for n in keys],
            "content_hash": [state_hash(p) for p in payloads],
            "payload": payloads,
        }
    )


def _open_versions(
    conn: sa.Connection,
    store: LineageStore,
    versions: pl.DataFrame,
    *,
    observed_at: datetime = T0,
    complete: bool = False,
    block_rows: int = 50_000,
) -> set[str]:
    """Open these versions with their subjects, rendered in blocks of `block_rows`; returns the subject
    indexes there while they were named."""
    seen: list[set[str]] = []

    def rendered(to_open: pl.DataFrame) -> Iterator[pl.DataFrame]:
        seen.append(_subject_index_names(conn))
        yield from to_open.join(versions.select("record_key", "payload"), on="record_key").iter_slices(
            block_rows
        )

    store.history.apply_snapshot(
        conn,
        "dam_asset_version",
        versions.select("record_key", "content_hash"),
        observed_at=observed_at,
        complete=complete,
        payloads=rendered,
        subjects_in_payload=True,
    )
    return seen[0]


def test_a_first_ingest_builds_the_subject_indexes_once_and_a_failed_one_keeps_them(
    store: LineageStore,
) -> None:
    """A first ingest names its records' subjects with the two subject indexes deferred (SQLite) and
    built at the end: the audit's lookups by ISBN and by work answer afterwards; one that fails leaves
    the indexes and the subjects as they were; a later, smaller one appends with the indexes in place."""
    with store.engine.connect() as conn:
        indexes = _subject_index_names(conn)
    assert indexes == {"ix_subject_isbn", "ix_subject_work"}
    isbn = "9780306406157"
    with pytest.raises(RuntimeError), store.engine.begin() as conn:
        _open_versions(conn, store, _versions(range(30), isbn))
        raise RuntimeError("killed mid-ingest")
    with store.engine.connect() as conn:
        assert _subject_index_names(conn) == indexes
    assert store.history.keys_about("dam_asset_version", [isbn], []) == set()
    with store.engine.begin() as conn:
        during = _open_versions(conn, store, _versions(range(30), isbn))
    assert during == (set() if store.engine.dialect.name == "sqlite" else indexes)
    with store.engine.connect() as conn:
        assert _subject_index_names(conn) == indexes
    assert store.history.keys_about("dam_asset_version", [isbn], []) == {f"a{n:03d}" for n in range(30)}
    with store.engine.begin() as conn:  # the table holds more subjects than this names
        assert _open_versions(conn, store, _versions(range(30, 35), "")) == indexes
    assert store.history.keys_about("dam_asset_version", [], ["2"]) == {"a032"}


def test_subjects_gathered_over_blocks_are_each_named_once(
    store: LineageStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Subjects are appended every few blocks, after the history rows they name: every record of every
    block is found by its ISBN (none by its work alone: each names an edition), including those of the
    last, partly gathered blocks, and a record named again in a later run keeps one subject row."""
    monkeypatch.setattr(history, "SUBJECTS_GATHERED", 7)  # blocks of 3: 9 gathered, then 2 left
    versions = _versions(range(11), "9780306406157")
    for observed_at in (T0, T0 + timedelta(days=1)):
        with store.engine.begin() as conn:
            _open_versions(conn, store, versions, observed_at=observed_at, complete=True, block_rows=3)
        versions = versions.with_columns(
            pl.col("payload").str.replace("}", ', "seen": 2}'),
        ).with_columns(pl.col("payload").map_elements(state_hash, pl.String).alias("content_hash"))
    keys = {f"a{n:03d}" for n in range(11)}
    assert store.history.keys_about("dam_asset_version", ["9780306406157"], []) == keys
    assert store.history.keys_about("dam_asset_version", [], ["0", "1", "2"]) == set()  # named by ISBN
    with store.engine.connect() as conn:
        named = conn.execute(sa.select(sa.func.count()).select_from(record_subject)).scalar_one()
    assert named == 11
    assert len(store.history.versions("dam_asset_version", "a010")) == 2


def test_a_commit_is_read_at_once_and_copied_into_the_database_beside_what_follows(
    store: LineageStore,
) -> None:
    """An ingest's commit is read at once by another connection; on SQLite the WAL's copy into the
    database runs in a thread, and once waited for the database file holds what was written; the pooled
    connections go back to SQLite's own checkpoint threshold. A failed transaction writes nothing."""
    values = {f"bulk.{n:05d}": f"{n:05d}" * 400 for n in range(6000)}  # ~12 MB: past the 4 MB threshold
    with pytest.raises(RuntimeError), store.checkpoints, store.checkpoints.transaction() as conn:
        store.cursors.set_many(conn, values)
        raise RuntimeError("killed mid-commit")
    assert store.cursors.get("bulk.00001") is None
    with store.checkpoints:
        with store.checkpoints.transaction() as conn:
            store.cursors.set_many(conn, values)
        with store.engine.connect() as reader:  # read while the copy may still run
            assert store.cursors.get("bulk.05999", reader) == values["bulk.05999"]
    if store.engine.dialect.name != "sqlite":
        return
    database = Path(str(store.engine.url.database))
    assert database.stat().st_size > 12_000_000
    with store.engine.connect() as one, store.engine.connect() as two:
        for conn in (one, two):
            assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == 1000


def test_a_first_backfill_appends_each_event_once(store: LineageStore) -> None:
    """While the event ids' unique index is deferred, an event the ledger held before is not appended
    again, and one appended twice in the backfill is there once afterwards and counted once."""
    events = [
        AuditEvent("version_approved", T0 + timedelta(minutes=n), isbn13=f"978030640{n:04d}", dam_version=n)
        for n in range(40)
    ]
    with store.engine.begin() as conn:
        assert store.ledger.record(conn, events[:3]) == 3
    with store.engine.begin() as conn, store.ledger.backfill(conn, editions=40) as appended:
        new = store.ledger.record(conn, events[:20]) + store.ledger.record(conn, events[10:])
    assert new - appended.duplicates == 37  # 40 events, 3 of them held before
    assert appended.duplicates == 10
    assert store.ledger.size() == 40
    with store.engine.connect() as conn:
        ids = conn.execute(sa.select(audit_ledger.c.event_id)).scalars().all()
    assert len(set(ids)) == 40
    with store.engine.begin() as conn:  # the ids' index is back: a replay adds nothing
        assert store.ledger.record(conn, events) == 0


def _ledger_oid(conn: sa.Connection) -> int:
    return int(conn.execute(sa.text(f"SELECT '{PG_SCHEMA}.audit_ledger'::regclass::oid")).scalar_one())


def test_a_first_backfill_on_postgresql_builds_beside_the_ledger_readers_and_writers_go_on(
    pg_database: str,
) -> None:
    """PostgreSQL: the first backfill appends to a table beside the ledger, which takes the ledger's place
    at the commit with its indexes and grants. Meanwhile readers read the ledger as it was, without
    waiting, and a second backfill appends to it as usual; nothing is lost and nothing is there twice."""
    store = LineageStore(connect_store(pg_database))
    events = [
        AuditEvent("version_approved", T0 + timedelta(minutes=n), isbn13=f"978030640{n:04d}", dam_version=n)
        for n in range(60)
    ]
    with store.engine.begin() as conn:
        store.ledger.record(conn, events[:2])
        conn.exec_driver_sql(f"GRANT SELECT ON {PG_SCHEMA}.audit_ledger TO PUBLIC")
        before = _ledger_oid(conn)
    indexes = _ledger_indexes(store)
    with pytest.raises(RuntimeError), store.engine.begin() as conn, store.ledger.backfill(conn, editions=60):
        store.ledger.record(conn, events)
        raise RuntimeError("killed mid-backfill")
    assert store.ledger.size() == 2 and _ledger_indexes(store) == indexes
    with store.engine.begin() as conn, store.ledger.backfill(conn, editions=60) as first:
        new = store.ledger.record(conn, events[:40])
        with store.engine.begin() as other, store.ledger.backfill(other, editions=60) as second:
            assert store.ledger.record(other, events[30:50]) == 20  # into the ledger, indexes and all
        assert second.duplicates == 0
        with store.engine.connect() as reader:
            reader.exec_driver_sql("SET statement_timeout = '2s'")
            assert reader.execute(sa.select(sa.func.count()).select_from(audit_ledger)).scalar_one() == 22
        new += store.ledger.record(conn, events[35:])
    assert new == 58 + 5  # 2 held before; 35..39 appended twice
    assert first.duplicates == 5 + 20  # and 30..49 committed by the second backfill meanwhile
    with store.engine.connect() as conn:
        assert _ledger_oid(conn) != before  # the table beside took the ledger's place
        ids = conn.execute(sa.select(audit_ledger.c.event_id)).scalars().all()
        public = conn.execute(
            sa.text("SELECT has_table_privilege('public', :t, 'SELECT')"), {"t": f"{PG_SCHEMA}.audit_ledger"}
        ).scalar_one()
        beside = sa.inspect(conn).has_table("audit_ledger_backfill", schema=PG_SCHEMA)
    assert sorted(ids) == sorted(e.event_id for e in events) and public and not beside
    assert _ledger_indexes(store) == indexes
    assert [e["dam_version"] for e in store.ledger.events_for_isbn("9780306400045")] == [45]
    with store.engine.begin() as conn:
        assert store.ledger.record(conn, events) == 0


def test_a_first_backfill_appends_to_a_ledger_a_view_depends_on(pg_database: str) -> None:
    """A ledger something else depends on (here a publisher's view) is not swapped: the backfill appends
    to it, and the view still answers."""
    store = LineageStore(connect_store(pg_database))
    events = [AuditEvent("version_approved", T0, isbn13=f"978030640{n:04d}") for n in range(20)]
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            f"CREATE VIEW {PG_SCHEMA}.approvals AS SELECT isbn13 FROM {PG_SCHEMA}.audit_ledger"
            " WHERE event_type = 'version_approved'"
        )
        before = _ledger_oid(conn)
    with store.engine.begin() as conn, store.ledger.backfill(conn, editions=20) as appended:
        assert store.ledger.record(conn, events) + store.ledger.record(conn, events) == 20
    assert appended.duplicates == 0
    with store.engine.connect() as conn:
        assert _ledger_oid(conn) == before
        assert conn.exec_driver_sql(f"SELECT count(*) FROM {PG_SCHEMA}.approvals").scalar_one() == 20


def test_the_ledger_keeps_its_events_through_the_event_index_migration(tmp_path: Path) -> None:
    """Revision 0006 (SQLite rebuilds the table): every event kept, in its order, ids unique after."""
    engine = connect_store(f"sqlite:///{tmp_path / 'lineage.db'}", migrate=False)
    upgrade(engine, "0005")
    events = [
        AuditEvent("version_approved", T0 + timedelta(minutes=n), isbn13=f"97803064{n:05d}")
        for n in range(30)
    ]
    with engine.begin() as conn:
        LineageStore(engine).ledger.record(conn, events[::-1])
        before = conn.exec_driver_sql("SELECT * FROM audit_ledger ORDER BY rowid").all()
    upgrade(engine)
    with engine.begin() as conn:
        assert conn.exec_driver_sql("SELECT * FROM audit_ledger ORDER BY rowid").all() == before
    store = LineageStore(engine)
    with engine.begin() as conn:
        assert store.ledger.record(conn, events) == 0
    assert "ux_audit_event" in _ledger_indexes(store)


def test_a_new_sqlite_store_has_large_pages_and_an_older_one_keeps_its_own(tmp_path: Path) -> None:
    """A store made now uses 16 KB pages (history rows are ~1 KB); a store made on SQLite's 4 KB pages
    keeps them (the size cannot change once a file has tables and WAL) and is read and written as before.
    Every connection, the read-only one `consodam audit` answers with too, caches 8 MB of pages."""
    new = connect_store(f"sqlite:///{tmp_path / 'new.db'}")
    older_path = tmp_path / "older.db"
    with sqlite3.connect(older_path) as made_before:
        made_before.execute("PRAGMA page_size=4096")
        made_before.execute("PRAGMA journal_mode=WAL")
        made_before.execute("CREATE TABLE kept (n INTEGER)")
    older = connect_store(f"sqlite:///{older_path}")
    reader = reading_engine(store_setting(f"sqlite:///{tmp_path / 'new.db'}"))
    for engine, size in ((new, SQLITE_PAGE_SIZE), (older, 4096), (reader, SQLITE_PAGE_SIZE)):
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA page_size").scalar_one() == size
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "wal"
            # as many pages cached as SQLite's default cache holds of 4 KB pages
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar_one() == -SQLITE_CACHE_KIB
    reader.dispose()
    for engine in (new, older):
        store = LineageStore(engine)
        with engine.begin() as conn:
            store.history.apply_snapshot(conn, "e", records(a="1", b="2"), observed_at=T0, complete=True)
        assert sorted(store.history.open_payload_map("e", ["a", "b"]).values()) == ["1", "2"]


def test_quarantine_opens_and_resolves(store: LineageStore) -> None:
    with store.engine.begin() as conn:
        store.quarantine.hold(
            conn,
            "consonance",
            [("17", "invalid_isbn: bad check digit", "{}"), ("18", "malformed_date: 'TBC'", "{}")],
            complete=True,
        )
    assert sorted(store.quarantine.open("consonance")["record_key"].to_list()) == ["17", "18"]
    with store.engine.begin() as conn:
        store.quarantine.hold(conn, "consonance", [], checked_keys=["17"])
    assert store.quarantine.open("consonance")["record_key"].to_list() == ["18"]
    with store.engine.begin() as conn:
        store.quarantine.hold(conn, "consonance", [("18", "malformed_date: 'TBC'", "{}")], complete=True)
    assert store.quarantine.open("consonance")["record_key"].to_list() == ["18"]


def test_parameters_are_bound_not_interpolated(store: LineageStore) -> None:
    hostile = "x'); DROP TABLE record_history; --"
    with store.engine.begin() as conn:
        store.history.apply_snapshot(
            conn, "edition", records(**{hostile: '{"v": "a1aaaaaa"}'}), observed_at=T0, complete=False
        )
    assert store.history.as_of("edition", hostile, T0) == {"v": "a1aaaaaa"}
    # An entity and run id go into the statement once for every row (bulk.py): quoted there, never run.
    at = T0 + timedelta(microseconds=123_456)
    with store.engine.begin() as conn:
        store.history.apply_snapshot(
            conn,
            hostile,
            records(**{hostile: '{"isbn13": "9780000000002", "work_id": 7}'}),
            observed_at=at,
            complete=False,
            run_id=hostile,
            subjects_in_payload=True,
        )
    [version] = store.history.versions(hostile, hostile)
    assert version["valid_from"] == at.replace(tzinfo=None) and version["valid_to"] is None
    assert version["run_id"] == hostile
    assert store.history.as_of(hostile, hostile, at) == {"isbn13": "9780000000002", "work_id": 7}
    assert store.history.as_of(hostile, hostile, at - timedelta(microseconds=1)) is None
    assert store.history.keys_about(hostile, ["9780000000002"], []) == {hostile}
    assert store.history.count_open("edition") == 1


def test_a_constant_column_takes_naive_utc_times_only(store: LineageStore) -> None:
    """A zone-aware time would be written as its wall-clock digits on SQLite: refused on both stores."""
    subjects = pl.DataFrame({"record_key": ["k"], "isbn13": ["9780000000002"], "work_id": [""]})
    with store.engine.begin() as conn, pytest.raises(ValueError, match="naive UTC"):
        bulk_insert(conn, record_subject, subjects, constants={"entity": T0})


def test_cursors_named_with_a_prefix_and_dropped_only_while_unchanged(store: LineageStore) -> None:
    """The period markers' hand-over (sync/markers.py): cursors found by their prefix taken literally, and
    one set again after it was read is not deleted."""
    with store.engine.begin() as conn:
        store.cursors.set_many(
            conn,
            {"edition_changes_pending:consonance": "a", "editionXchangesXpending:dam": "b", "other": "c"},
        )
    taken = store.cursors.named_with("edition_changes_pending:")
    assert taken == {"edition_changes_pending:consonance": "a"}  # "_" is not a wildcard
    with store.engine.begin() as conn:
        store.cursors.set(conn, "edition_changes_pending:consonance", "a, then more")
    store.cursors.drop_unchanged(taken)
    assert store.cursors.named_with("edition_changes_pending:") == {
        "edition_changes_pending:consonance": "a, then more"
    }
    store.cursors.drop_unchanged(store.cursors.named_with("edition_changes_pending:"))
    assert store.cursors.named_with("edition_changes_pending:") == {}
    assert store.cursors.get("other") == "c"
