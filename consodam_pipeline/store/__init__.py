"""The lineage store: row-level histories, the audit ledger, quarantine and sync cursors (SQLAlchemy Core).

Import from the submodules (`store.lineage`, `store.engine`, `store.access`): the package itself imports
nothing, so a read-only command need not load polars.
"""
