"""The lineage store and table storage as Dagster resources."""

from __future__ import annotations

import threading

import dagster as dg
import sqlalchemy as sa

from consodam_pipeline.store.engine import connect_store, normalize_url, store_url
from consodam_pipeline.store.lineage import LineageStore

_ENGINES: dict[str, sa.Engine] = {}
_LOCK = threading.Lock()


def engine_for(url: str) -> sa.Engine:
    """One migrated engine per URL per process (migrations run once, pools are shared)."""
    key = normalize_url(url)
    with _LOCK:
        if key not in _ENGINES:
            _ENGINES[key] = connect_store(key)
        return _ENGINES[key]


def forget_engine(url: str) -> None:
    """Close the pooled connections to a store that is about to be removed (a benchmark's scratch home)."""
    with _LOCK:
        engine = _ENGINES.pop(normalize_url(url), None)
    if engine is not None:
        engine.dispose()


class LineageStoreResource(dg.ConfigurableResource):
    """Row-level histories, the audit ledger, quarantine and cursors. Empty url: CONSODAM_STORE_URL or SQLite."""

    url: str = ""

    def store(self) -> LineageStore:
        return LineageStore(engine_for(self.url or store_url()))
