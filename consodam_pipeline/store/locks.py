"""Locks that keep two runs from planning the same writes at once.

Runs may overlap (automation and an operator's backfill, two backfills, a retry beside a new run). Each
step that writes a slice of the store or of a system holds a lock per target and period for its whole plan →
execute → record, so a second run over the same period plans only after the first recorded, and finds
everything already right. Locks are taken in name order (no two steps can wait on each other), and a run
that dies releases them with its connection or its file.

- PostgreSQL: session advisory locks on a connection of their own.
- SQLite: an exclusive `flock` on a file per lock beside the database; concurrent runs are serialized.
Where a run has to wait, it says for what.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO

import sqlalchemy as sa

WAIT_S = 1800.0  # a run waits this long for another run's step over the same slice, then fails saying so


class LockTimeout(RuntimeError):
    """Another run held the slice longer than a run waits."""


def lock_key(name: str) -> int:
    """A signed 64-bit key for PostgreSQL's advisory locks."""
    return int.from_bytes(hashlib.sha1(name.encode()).digest()[:8], "big", signed=True)


class StoreLocks:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    @contextlib.contextmanager
    def holding(
        self, names: Sequence[str], say: Callable[[str], object] | None = None, wait_s: float = WAIT_S
    ) -> Iterator[None]:
        """Hold every named lock for the block (waiting for another run where it holds one)."""
        wanted = sorted(set(names))
        if not wanted:
            yield
            return
        if self.engine.dialect.name != "postgresql" and self.engine.url.database in (None, "", ":memory:"):
            yield  # a database in memory belongs to one process
            return
        hold = self._postgres if self.engine.dialect.name == "postgresql" else self._files
        with hold(wanted, say or (lambda _message: None), wait_s):
            yield

    @contextlib.contextmanager
    def _postgres(self, names: list[str], say: Callable[[str], object], wait_s: float) -> Iterator[None]:
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            try:
                for name in names:
                    if conn.execute(sa.select(sa.func.pg_try_advisory_lock(lock_key(name)))).scalar_one():
                        continue
                    say(f"waiting for {name}: another run is writing it")
                    conn.execute(sa.text(f"SET lock_timeout = '{int(wait_s * 1000)}ms'"))
                    try:
                        conn.execute(sa.select(sa.func.pg_advisory_lock(lock_key(name))))
                    except sa.exc.OperationalError as exc:
                        raise LockTimeout(f"{name}: another run held it for over {wait_s:.0f} s") from exc
                yield
            finally:
                with contextlib.suppress(sa.exc.DBAPIError):
                    conn.execute(sa.select(sa.func.pg_advisory_unlock_all()))

    @contextlib.contextmanager
    def _files(self, names: list[str], say: Callable[[str], object], wait_s: float) -> Iterator[None]:
        folder = Path(f"{self.engine.url.database}.locks")
        folder.mkdir(parents=True, exist_ok=True)
        held: list[IO[bytes]] = []
        try:
            for name in names:
                handle = open(folder / hashlib.sha1(name.encode()).hexdigest()[:20], "ab")  # noqa: SIM115
                held.append(handle)
                _flock(handle, name, say, wait_s)
            yield
        finally:
            for lock in held:
                lock.close()  # closing the file releases its lock


def _flock(handle: IO[bytes], name: str, say: Callable[[str], object], wait_s: float) -> None:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        say(f"waiting for {name}: another run is writing it (SQLite: runs over one period take turns)")
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            continue
    raise LockTimeout(f"{name}: another run held it for over {wait_s:.0f} s")
