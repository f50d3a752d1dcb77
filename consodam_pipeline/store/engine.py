"""Connecting to the lineage store: a SQLite file by default, a `consodam` schema in PostgreSQL."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

PG_SCHEMA = "consodam"
MIGRATIONS = Path(__file__).parent / "migrations"


def default_home() -> Path:
    return Path(os.environ.get("CONSODAM_HOME", Path.cwd() / ".consodam"))


def store_url() -> str:
    """`CONSODAM_STORE_URL`, else a SQLite file under CONSODAM_HOME."""
    url = os.environ.get("CONSODAM_STORE_URL")
    if url:
        return url
    home = default_home()
    home.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home / 'lineage.db'}"


def normalize_url(url: str) -> str:
    # SQLAlchemy 2.1 maps bare postgresql:// to psycopg 3, which this project does not install.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg2://" + url.split("://", 1)[1]
    return url


# A new store's page size. History rows are ~1 KB (the DAM's payloads): on 16 KB pages a first ingest's
# 354k rows and their subjects went in ~18% faster than on SQLite's 4 KB (fewer pages to split and write,
# shallower indexes). It only takes effect before the file's first table (and before WAL mode is set):
# an existing store keeps the size it was made with.
SQLITE_PAGE_SIZE = 16_384
# A connection's page cache: SQLite's default is 2,000 KiB whatever the page size, which on 16 KB pages
# holds a quarter of the pages it holds on 4 KB. Four times the default keeps as many pages as before (at
# 20k works the backfill run again, which reads much of the store, took 3.1-3.7 s with it, 3.8-5.1 s
# without).
SQLITE_CACHE_KIB = 8_000


def sqlite_page_cache(dbapi_conn: object, _record: object = None) -> None:
    cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.close()


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    sqlite_page_cache(dbapi_conn)
    cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


@contextmanager
def page_cache(conn: sa.Connection, kib: int) -> Iterator[None]:
    """SQLite's page cache at `kib` KiB on this connection while bulk appends run, then back to what it
    was. An append into an index ordered by something other than the insertion order lands at a random
    page; with the default 2 MB cache nearly every such append reads that page back from the file and
    spills a dirty one to the WAL. No-op on PostgreSQL (its buffers are the server's)."""
    if conn.dialect.name != "sqlite":
        yield
        return
    default = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
    conn.exec_driver_sql(f"PRAGMA cache_size=-{kib}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size={default}")


AUTOCHECKPOINT_PAGES = 1000  # SQLite's default: a commit that leaves more in the WAL copies it back itself


class CheckpointAside:
    """Transactions whose commit leaves SQLite's WAL checkpoint to a thread of its own. A commit normally
    copies what it wrote from the WAL into the database itself, before it returns: for a first ingest of
    the DAM (20k works) ~600 MB, 2.5-4 s of a 3-5 s commit, while the ingest waits. Here the commit only
    appends to the WAL; the copy runs beside what the ingest does next (its snapshot file, its period
    markers), and `wait()`, or the end of a `with` block on this object, joins it. Readers see the
    committed rows either way: a reader reads a page from the WAL until it is copied. On PostgreSQL, a
    plain transaction (the server checkpoints by itself)."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self._thread: threading.Thread | None = None

    @contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        if self.engine.dialect.name != "sqlite":
            with self.engine.begin() as conn:
                yield conn
            return
        self.wait()  # one copy at a time
        with self.engine.connect() as conn:
            _autocheckpoint(conn, 0)
            try:
                with conn.begin():
                    yield conn
            finally:
                _autocheckpoint(conn, AUTOCHECKPOINT_PAGES)  # the pooled connection goes back as it was
        self._thread = threading.Thread(target=self._checkpoint, name="consodam-wal-checkpoint", daemon=True)
        self._thread.start()

    def _checkpoint(self) -> None:
        # A connection of its own, closed at once: taken from the pool, it would stay there beside the
        # ingest's own, each keeping the memory of the 64 MB page cache bulk appends give it.
        unpooled = sa.create_engine(self.engine.url, poolclass=sa.pool.NullPool)
        try:
            with unpooled.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except sa.exc.DBAPIError as error:  # the rows are committed; the next commit copies them back
            logging.getLogger(__name__).warning("WAL checkpoint left to the next commit: %s", error.orig)
        finally:
            unpooled.dispose()

    def wait(self) -> None:
        """Until the copy started by the last commit is done."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> CheckpointAside:
        return self

    def __exit__(self, *_: object) -> None:
        self.wait()  # no copy outlives the block that committed (a step, a test)


def _autocheckpoint(conn: sa.Connection, pages: int) -> None:
    conn.exec_driver_sql(f"PRAGMA wal_autocheckpoint={pages}")
    conn.commit()  # ends the transaction SQLAlchemy began around the pragma (pysqlite began none)


def connect_store(url: str | None = None, *, migrate: bool = True) -> sa.Engine:
    """An engine on the store, migrated to the latest schema version."""
    url = normalize_url(url or store_url())
    if url.startswith("sqlite"):
        database = sa.engine.make_url(url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = sa.create_engine(url, pool_pre_ping=True).execution_options(
            schema_translate_map={None: PG_SCHEMA}
        )
    if migrate:
        upgrade(engine)
    return engine


def schema_of(engine: sa.Engine) -> str | None:
    return None if engine.dialect.name == "sqlite" else PG_SCHEMA


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Migrate under a lock: runs that start together on a new store migrate it once, one after another."""
    from alembic import command  # here: a read of the store never needs alembic
    from alembic.config import Config

    from consodam_pipeline.store.locks import StoreLocks

    schema = schema_of(engine)
    with StoreLocks(engine).holding(["store:migrate"]), engine.begin() as conn:
        if schema:
            conn.execute(sa.text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        cfg.attributes["schema"] = schema
        command.upgrade(cfg, revision)


def schema_version(engine: sa.Engine) -> str | None:
    """The store's schema revision (alembic's version table)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(
            conn, opts={"version_table_schema": schema_of(engine)}
        ).get_current_revision()


def redacted_url(engine: sa.Engine) -> str:
    """The store's URL with any password masked."""
    return engine.url.render_as_string(hide_password=True)
