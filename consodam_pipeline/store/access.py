"""Opening the lineage store to read it, honestly: a read never creates a store or migrates one, and every
way the setting can be wrong gets one line naming the setting and the reason (the password never shown).

Writers (Dagster resources) go through `store.resource`, which creates and migrates; readers (the audit
command, the report) come here.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from consodam_pipeline.store.engine import PG_SCHEMA, default_home, normalize_url, sqlite_page_cache
from consodam_pipeline.store.schema import STORE_REVISION

_CREDENTIALS = re.compile(r"(//[^/@:]*:)[^@/]*@")


class StoreSettingError(ValueError):
    """The setting names no usable store (bad input: the user can fix the value)."""


class StoreUnreachable(RuntimeError):
    """The setting is well formed but the store cannot be read now."""


@dataclass(frozen=True)
class StoreSetting:
    url: str
    name: str  # where the URL came from: --store-url, CONSODAM_STORE_URL or its CONSODAM_HOME default

    @property
    def shown(self) -> str:
        return redact(self.url)


def redact(url: str) -> str:
    return _CREDENTIALS.sub(r"\1***@", url)


def store_setting(url: str | None = None) -> StoreSetting:
    if url:
        return StoreSetting(url, "--store-url")
    if os.environ.get("CONSODAM_STORE_URL"):
        return StoreSetting(os.environ["CONSODAM_STORE_URL"], "CONSODAM_STORE_URL")
    return StoreSetting(
        f"sqlite:///{default_home() / 'lineage.db'}",
        "CONSODAM_STORE_URL (unset, so $CONSODAM_HOME/lineage.db)",
    )


def reading_engine(setting: StoreSetting) -> sa.Engine:
    """An engine on an existing store at the revision this code reads; StoreSettingError or
    StoreUnreachable otherwise."""
    try:
        url = sa.engine.make_url(normalize_url(setting.url))
    except sa.exc.ArgumentError:
        raise StoreSettingError(
            f"{setting.name}: {setting.shown!r} is not a database URL "
            "(sqlite:////absolute/path/lineage.db or postgresql://user@host:5432/db)"
        ) from None
    if url.get_backend_name() == "sqlite":
        engine = _sqlite(setting, url.database)
    elif url.get_backend_name() == "postgresql":
        engine = sa.create_engine(url, connect_args={"connect_timeout": 5}).execution_options(
            schema_translate_map={None: PG_SCHEMA}, postgresql_readonly=True
        )
    else:
        raise StoreSettingError(
            f"{setting.name}: {url.get_backend_name()!r} is not supported (sqlite or postgresql)"
        )
    _check_revision(engine, setting)
    return engine


def _sqlite(setting: StoreSetting, database: str | None) -> sa.Engine:
    if not database or database == ":memory:":
        raise StoreSettingError(f"{setting.name}: {setting.shown!r} names no database file")
    path = Path(database)
    if not path.is_file():
        hint = ""
        if not path.is_absolute():
            hint = (
                f"; sqlite:///{database} is the path {database} relative to {Path.cwd()} — "
                f"an absolute path takes four slashes: sqlite:////{database}"
            )
        raise StoreSettingError(f"{setting.name}: no lineage store at {path}{hint}")
    # Read-only: a read never creates or changes the file.
    engine = sa.create_engine(f"sqlite:///file:{path.resolve()}?mode=ro&uri=true")
    sa.event.listen(engine, "connect", sqlite_page_cache)
    return engine


def _check_revision(engine: sa.Engine, setting: StoreSetting) -> None:
    version = sa.table("alembic_version", sa.column("version_num"))
    try:
        with engine.connect() as conn:
            revision = conn.execute(sa.select(version.c.version_num)).scalar_one_or_none()
    except sa.exc.OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc).splitlines()[0]
        if "no such table" in reason or "does not exist" in reason:
            raise StoreSettingError(
                f"{setting.name}: {setting.shown} holds no consodam lineage store"
            ) from None
        raise StoreUnreachable(f"{setting.name}: cannot read {setting.shown}: {redact(reason)}") from None
    except sa.exc.ProgrammingError:
        raise StoreSettingError(f"{setting.name}: {setting.shown} holds no consodam lineage store") from None
    except sa.exc.DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise StoreUnreachable(f"{setting.name}: cannot read {setting.shown}: {redact(reason)}") from None
    if revision != STORE_REVISION:
        raise StoreSettingError(
            f"{setting.name}: the lineage store at {setting.shown} is at revision {revision}; this consodam reads "
            f"{STORE_REVISION} — a sync (make demo, or any run) migrates it"
        )
