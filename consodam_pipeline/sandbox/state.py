"""Sandbox state: one SQLite file per server in the data dir, so every write survives a restart."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CONSONANCE_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS works (
    id INTEGER PRIMARY KEY, title TEXT NOT NULL, subtitle TEXT, contributions TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS products (
    id INTEGER PRIMARY KEY,
    work_id INTEGER NOT NULL,
    isbn13 TEXT,
    full_title TEXT NOT NULL,
    subtitle TEXT,
    publication_date TEXT,
    embargo_date TEXT,
    publishing_status TEXT NOT NULL,
    form_code TEXT NOT NULL,
    imprint TEXT NOT NULL,
    project_stage TEXT NOT NULL,
    for_sale TEXT NOT NULL,
    not_for_sale TEXT NOT NULL,
    worldwide INTEGER NOT NULL,
    row_rights_type TEXT,
    changed_on TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    isbn10 TEXT,
    isbn_dashes TEXT
);
CREATE TABLE IF NOT EXISTS supporting_resources (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    product_ids TEXT NOT NULL,
    work_id INTEGER,
    resource_content_type TEXT NOT NULL,
    image_remote_url TEXT NOT NULL,
    caption TEXT,
    filename TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS todos (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id INTEGER NOT NULL,
    name TEXT NOT NULL,
    milestone INTEGER NOT NULL,
    due_date TEXT,
    done_date TEXT
);
CREATE TABLE IF NOT EXISTS production_files (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    product_id INTEGER NOT NULL,
    file_type TEXT NOT NULL,
    url TEXT NOT NULL,
    caption TEXT,
    created_at TEXT NOT NULL
);
"""
CONSONANCE_INDEXES = """
CREATE INDEX IF NOT EXISTS ix_products_changed ON products(changed_on, id);
CREATE INDEX IF NOT EXISTS ix_products_isbn ON products(isbn13);
CREATE INDEX IF NOT EXISTS ix_products_work ON products(work_id);
CREATE INDEX IF NOT EXISTS ix_products_pub ON products(publication_date);
CREATE INDEX IF NOT EXISTS ix_sr_work ON supporting_resources(work_id);
CREATE INDEX IF NOT EXISTS ix_todos_product ON todos(product_id);
CREATE INDEX IF NOT EXISTS ix_pf_product ON production_files(product_id);
"""
CONSONANCE_DDL = CONSONANCE_TABLES + CONSONANCE_INDEXES


DAM_TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS assets (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    asset_id TEXT NOT NULL UNIQUE,
    original_asset_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    latest INTEGER NOT NULL,
    name TEXT NOT NULL,
    mime_type TEXT NOT NULL,
    role TEXT NOT NULL,
    isbn TEXT,
    work_id TEXT,
    folder_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    modified_at TEXT NOT NULL,
    approval_status TEXT NOT NULL,
    approved_by TEXT,
    approved_at TEXT,
    approval_history TEXT NOT NULL,
    license_from TEXT,
    license_until TEXT,
    extra_metadata TEXT NOT NULL DEFAULT '{}',
    security_policies TEXT NOT NULL DEFAULT '[1]',
    locked_by TEXT,
    deleted INTEGER NOT NULL DEFAULT 0,
    width_px INTEGER,
    height_px INTEGER,
    colour_space TEXT,
    file_size INTEGER,
    page_count INTEGER,
    duration_s REAL,
    content TEXT
);
CREATE TABLE IF NOT EXISTS usage_log (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, asset_id TEXT NOT NULL, used_by TEXT NOT NULL, channel TEXT NOT NULL,
    action TEXT NOT NULL, used_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS folders (
    folder_id TEXT PRIMARY KEY, name TEXT NOT NULL, parent_id TEXT
);
CREATE TABLE IF NOT EXISTS collections (
    collection_id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, owner_name TEXT NOT NULL, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS collection_assets (
    collection_id TEXT NOT NULL, asset_id TEXT NOT NULL, PRIMARY KEY (collection_id, asset_id)
);
CREATE TABLE IF NOT EXISTS security_policies (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, description TEXT NOT NULL, create_date TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, kind TEXT NOT NULL, payload TEXT NOT NULL, status TEXT NOT NULL,
    created_at REAL NOT NULL, asset_id TEXT
);
CREATE TABLE IF NOT EXISTS review_tasks (
    task_id TEXT PRIMARY KEY, asset_id TEXT, isbn TEXT, milestone TEXT NOT NULL,
    status TEXT NOT NULL, created_at TEXT NOT NULL, completed_at TEXT,
    kind TEXT NOT NULL DEFAULT 'review', requirement TEXT, note TEXT, completed_by TEXT
);
"""
DAM_INDEXES = """
CREATE INDEX IF NOT EXISTS ix_assets_original ON assets(original_asset_id, version);
CREATE INDEX IF NOT EXISTS ix_assets_modified ON assets(modified_at);
CREATE INDEX IF NOT EXISTS ix_assets_isbn ON assets(isbn);
CREATE INDEX IF NOT EXISTS ix_assets_latest ON assets(latest, seq);
"""
DAM_DDL = DAM_TABLES + DAM_INDEXES


class StateDB:
    """A SQLite connection shared by the server's threads behind one lock (the GIL serialises us anyway)."""

    def __init__(self, path: Path, ddl: str) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.executescript(ddl)
        self.lock = threading.RLock()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    def query(self, sql: str, params: tuple[object, ...] | dict[str, object] = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self.conn.execute(sql, params).fetchall()

    def meta(self, key: str) -> str | None:
        rows = self.query("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0]["value"] if rows else None

    def drop_indexes(self) -> list[str]:
        """Drop secondary indexes (bulk loads are faster without them); returns their DDL to recreate."""
        rows = self.query("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        with self.lock:
            for row in rows:
                self.conn.execute(f'DROP INDEX "{row["name"]}"')
        return [row["sql"] for row in rows]

    def create_indexes(self, ddl: list[str]) -> None:
        with self.lock:
            for statement in ddl:
                self.conn.execute(statement)

    def close(self) -> None:
        self.conn.close()
