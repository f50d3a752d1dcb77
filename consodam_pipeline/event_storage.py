"""Dagster's embedded SQLite storage, with its event log's connections kept instead of made per event.

Dagster's SQLite event log creates an engine, opens a connection and closes it for every event it stores,
twice for an asset event (the run's own database, then the cross-run index): SQLAlchemy compiles each
statement afresh for a new engine, and closing the last connection to a WAL database copies its WAL back.
That is most of the ~12-15 ms an event costs here, and a sync run stores a hundred or more (period markers,
checks, step events). This storage keeps one engine per database for the life of the process, so statements
are compiled once, and keeps the index database's connection open. A run's own database is still opened and
closed per event: the webserver follows a running run's log by watching that file change, which the WAL's
copy on close does.

`deploy/dagster.yaml` names the instance class that uses it (`instance_class`); its files are Dagster's own
(under $DAGSTER_HOME/history), so an instance switches to it, or back, keeping its history.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.event_log.base import EventLogStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._serdes import ConfigurableClassData
from sqlalchemy.pool import NullPool

RUN_ENGINES_KEPT = 16  # the runs this process wrote to last (the webserver reads many; each engine is small)


class KeptEnginesSqliteEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log with an engine per database kept, and the index database's connection."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None) -> None:
        self._engines: OrderedDict[str, sa.Engine] = OrderedDict()
        self._engines_pid = os.getpid()
        super().__init__(base_dir, inst_data=inst_data)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[sa.Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:  # emptied by wipe() and upgrade(): create the tables again
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _engine(self, shard: str) -> sa.Engine:
        if self._engines_pid != os.getpid():  # a forked process: the parent's connections are not its own
            self._engines, self._engines_pid = OrderedDict(), os.getpid()
        engine = self._engines.get(shard)
        if engine is not None:
            self._engines.move_to_end(shard)
            return engine
        kept = {"pool_size": 1} if shard == INDEX_SHARD_NAME else {"poolclass": NullPool}
        engine = sa.create_engine(
            self.conn_string_for_shard(shard),
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
            **kept,
        )
        self._engines[shard] = engine
        runs = [name for name in self._engines if name != INDEX_SHARD_NAME]
        for oldest in runs[: max(0, len(runs) - RUN_ENGINES_KEPT)]:
            self._engines.pop(oldest).dispose()
        return engine

    def dispose(self) -> None:
        super().dispose()
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()


class ConsodamInstance(DagsterInstance):
    """Dagster's instance, with the event log above in place of Dagster's SQLite one (same directory, same
    files); any other event log (PostgreSQL) is kept as configured. Named by `instance_class` in
    dagster.yaml, so the webserver, the daemon, code servers and run workers all build it."""

    @classmethod
    def config_schema(cls) -> dict[str, Any]:
        return {}  # no settings of its own

    @staticmethod
    def config_defaults(base_dir: str) -> Mapping[str, ConfigurableClassData | None]:
        return InstanceRef.config_defaults(base_dir)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if "event_storage" in kwargs:  # Dagster builds an instance from its dagster.yaml by keywords
            kwargs["event_storage"] = kept_engines(kwargs["event_storage"])
        super().__init__(*args, **kwargs)


def kept_engines(storage: EventLogStorage) -> EventLogStorage:
    """Dagster's SQLite event log as KeptEnginesSqliteEventLogStorage on the same files; any other as it is."""
    if type(storage) is not SqliteEventLogStorage:  # exactly Dagster's: a subclass is someone's own choice
        return storage
    return KeptEnginesSqliteEventLogStorage(storage._base_dir)
