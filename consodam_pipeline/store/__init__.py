"""The lineage store: row-level histories, the audit ledger, quarantine and sync cursors (SQLAlchemy Core)."""

from consodam_pipeline.store.engine import connect_store, store_url
from consodam_pipeline.store.lineage import AuditEvent, LineageStore, SnapshotDiff

__all__ = ["AuditEvent", "LineageStore", "SnapshotDiff", "connect_store", "store_url"]
