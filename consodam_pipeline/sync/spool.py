"""Fetched pages on local disk until the commit, so an ingest never holds the whole catalog in memory.

Held in memory, a million DAM versions fetched as a thousand small frames cost three to four times their
own size: the allocator cannot return pages that small long-lived frames pin between the decoding
churn. Here a few pages at a time are gathered, then written as Arrow IPC files and dropped.

Each flush is split by the first character of the record key, so the rows of one key range can be read
back alone, sorted, and inserted in key order (history indexes grow at their right edge) without
sorting the whole batch in memory. For hex ids (OTMM) that is sixteen even ranges; keys that share a
first character only make a range larger, never wrong.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import polars as pl

SEQ = "_seq"  # arrival order: where a key came twice, the later copy wins
PREFIX = "_prefix"
SPOOL_PREFIX = "consodam-spool-"
STALE_AFTER_S = 6 * 3600


class Spool:
    def __init__(self, schema: Mapping[str, pl.DataType], key_column: str, flush_rows: int = 50_000) -> None:
        self.schema = dict(schema)
        self.key_column = key_column
        self.flush_rows = flush_rows
        sweep_stale_spools(Path(tempfile.gettempdir()))
        self.directory = Path(tempfile.mkdtemp(prefix=f"{SPOOL_PREFIX}{os.getpid()}-"))
        self.rows = 0
        self._pending: list[pl.DataFrame] = []
        self._pending_rows = 0
        self._flushes = 0
        self._files: dict[str, list[Path]] = {}

    def add(self, frame: pl.DataFrame) -> None:
        """Rows in the spool's schema; written out once enough have gathered."""
        if frame.height == 0:
            return
        self._pending.append(frame.with_row_index(SEQ, offset=self.rows))
        self.rows += frame.height
        self._pending_rows += frame.height
        if self._pending_rows >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        gathered = pl.concat(self._pending).with_columns(
            key_text(self.key_column).str.slice(0, 1).alias(PREFIX)
        )
        self._pending, self._pending_rows = [], 0
        for (prefix,), part in gathered.partition_by(PREFIX, as_dict=True).items():
            path = self.directory / f"{self._flushes:05d}-{_bucket_name(str(prefix))}.arrow"
            part.drop(PREFIX).write_ipc(path, compression="uncompressed")
            self._files.setdefault(str(prefix), []).append(path)
        self._flushes += 1

    def scan(self, *, with_order: bool = False) -> pl.LazyFrame:
        """Every spooled row (a key that came twice, twice), in the spool's schema, and with its arrival
        order (SEQ) first when asked."""
        self.flush()
        columns = [SEQ, *self.schema] if with_order else list(self.schema)
        files = [path for paths in self._files.values() for path in paths]
        if not files:
            return pl.LazyFrame(schema={SEQ: pl.UInt32, **self.schema}).select(columns)
        return pl.scan_ipc(files).select(columns)

    def key_range(self, prefix: str, columns: Sequence[str] | None = None) -> pl.DataFrame:
        """The last copy of each key that starts with `prefix` (empty if none came): every column, or
        the key and these (only they are read)."""
        self.flush()
        wanted = list(self.schema) if columns is None else [self.key_column, *columns]
        files = self._files.get(prefix)
        if not files:
            return pl.DataFrame(schema={name: self.schema[name] for name in wanted})
        rows = pl.scan_ipc(files).select(SEQ, *wanted).collect().sort(SEQ)
        return rows.filter(key_text(self.key_column).is_last_distinct()).drop(SEQ)

    def close(self) -> None:
        self._pending.clear()
        self._files.clear()
        shutil.rmtree(self.directory, ignore_errors=True)


def key_text(key_column: str) -> pl.Expr:
    """The record key as text, the form history and the hash frame use."""
    return pl.col(key_column).cast(pl.String)


def _bucket_name(prefix: str) -> str:
    """File-safe and ordered like the character itself."""
    return f"{ord(prefix):06x}" if prefix else "empty"


def sweep_stale_spools(parent: Path, now: float | None = None) -> list[Path]:
    """Remove spools left by processes killed outright (an out-of-memory kill gives no chance to clean
    up): only those whose process is gone and that have not changed for hours. Returns what it removed."""
    removed = []
    now = time.time() if now is None else now
    for folder in parent.glob(f"{SPOOL_PREFIX}*"):
        owner = folder.name.removeprefix(SPOOL_PREFIX).split("-", 1)[0]
        try:
            idle = now - folder.stat().st_mtime
        except OSError:
            continue
        if owner.isdigit() and not _alive(int(owner)) and idle > STALE_AFTER_S:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
