"""The lineage store, composed of what it keeps: row-level history, the audit ledger, sync cursors, the write
engine's bookkeeping, the quarantine and the DAM's usage log; and the locks that keep overlapping runs from
writing one slice at once.

Each part takes a Connection for its writes, so a caller composes several (rows + cursor + ledger) in one
transaction: `with store.engine.begin() as conn: …`.
"""

from __future__ import annotations

import sqlalchemy as sa

from consodam_pipeline.store.bookkeeping import WriteBookkeeping
from consodam_pipeline.store.cursors import Cursors
from consodam_pipeline.store.engine import CheckpointAside
from consodam_pipeline.store.history import RecordHistory
from consodam_pipeline.store.ledger import Ledger
from consodam_pipeline.store.locks import StoreLocks
from consodam_pipeline.store.quarantine import Quarantine
from consodam_pipeline.store.usage import UsageLog


class LineageStore:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.history = RecordHistory(engine)
        self.ledger = Ledger(engine)
        self.cursors = Cursors(engine)
        self.bookkeeping = WriteBookkeeping(engine)
        self.quarantine = Quarantine(engine)
        self.usage = UsageLog(engine)
        self.locks = StoreLocks(engine)
        self.checkpoints = CheckpointAside(engine)
