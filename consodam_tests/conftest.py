from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from consodam_tests.support import PostgresCluster, Sandbox, find_pg_bin


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A real PostgreSQL: CONSODAM_TEST_PG_URL, or a throwaway cluster. In CI, missing Postgres fails."""
    given = os.environ.get("CONSODAM_TEST_PG_URL")
    if given:
        yield given
        return
    bin_dir = find_pg_bin()
    if bin_dir is None:
        message = "PostgreSQL binaries (initdb, pg_ctl) not found and CONSODAM_TEST_PG_URL not set"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    cluster = PostgresCluster(bin_dir)
    url = cluster.start()
    try:
        yield url
    finally:
        cluster.stop()


@pytest.fixture
def pg_database(pg_url: str) -> Iterator[str]:
    """A fresh database per test on the shared cluster."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield pg_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        from consodam_pipeline.store import resource

        for key in [k for k in resource._ENGINES if k.endswith(f"/{name}")]:
            resource._ENGINES.pop(key).dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lineage.db'}"
    return str(request.getfixturevalue("pg_database"))


@pytest.fixture(scope="session")
def shared_sandbox() -> Iterator[Sandbox]:
    """One sandbox for tests that only read (faults are cleared after each test)."""
    with tempfile.TemporaryDirectory(prefix="consodam-sbx-") as data_dir:
        sandbox = Sandbox(Path(data_dir)).start()
        try:
            yield sandbox
        finally:
            sandbox.stop()


@pytest.fixture
def sandbox(shared_sandbox: Sandbox) -> Iterator[Sandbox]:
    yield shared_sandbox
    shared_sandbox.clear_faults()


@pytest.fixture
def fresh_sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """A sandbox of its own, for tests that write."""
    sandbox = Sandbox(tmp_path / "sandbox").start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


@pytest.fixture
def consodam_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("CONSODAM_HOME", str(home))
    monkeypatch.delenv("CONSODAM_STORE_URL", raising=False)
    monkeypatch.delenv("CONSODAM_TABLES_PATH", raising=False)
    return home
