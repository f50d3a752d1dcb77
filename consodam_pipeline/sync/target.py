"""What a write asset declares to the write engine: a `WriteTarget` — the entity it records under, the slots it
owns, how to create, update, delete and look up one item — and, for one run, what the system shows
(`observe`), which slots the run answers for (`scope`), why an unwanted slot goes (`removal_reasons`) and what
each slot's ledger events name (`slots`).

The state of a slot is canonical JSON (`domain.canonical`), for what the system shows as for what consodam
wants, so equal states compare equal as text.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

import polars as pl

from consodam_pipeline.domain.timestamps import to_naive_utc
from consodam_pipeline.store.lineage import LineageStore

Client = TypeVar("Client")
Kind = Literal["create", "update", "delete"]
# The columns a ledger event names, as a slot frame carries them (key + these + the partition).
CONTEXT_COLUMNS = ("isbn13", "work_id", "dam_asset_id", "dam_version", "role")
# A slot frame's column saying the slot is about an asset the work's editions share: its record is the work's
# too, so every edition of the work finds it in its audit (its events still name the edition they serve).
SHARED = "shared"
# A slot frame's column naming the slot's publication period: kept with a pending write (a sensor requests a
# run for exactly the periods holding pending writes), never written into an event.
PERIOD = "partition_key"


@dataclass(frozen=True)
class Found:
    """An object in the system that fills a slot consodam owns."""

    key: str
    handle: str  # its id in the system
    state: str  # canonical JSON of the fields consodam owns in it
    changed_at: datetime | None = None  # when the system last changed it; None: read just now
    stamp: str | None = None  # the system's modification stamp (the echo journal keeps ours)


@dataclass(frozen=True)
class Settled:
    """An event about a slot that is not consodam's own write: its object closed by someone in the system
    itself (a reviewer's decision on a task), or a removal the target names its own way (a task completed
    with a decision taken on the version). A slot closed elsewhere is planned as if consodam had recorded
    nothing there; a `final` one is not wanted again this run (that decision stands)."""

    event_type: str
    actor: str | None
    after: Mapping[str, Any]
    identity: str
    at: datetime | None = None  # when it happened, where the system says (else: when it was recorded)
    final: bool = False


@dataclass(frozen=True)
class Action:
    kind: Kind
    key: str
    reason: str
    desired: str | None = None  # the state to write (create, update)
    found: Found | None = None  # the object acted on (update, delete)
    after_create: bool = False  # a delete that waits for its slot's create to succeed


@dataclass
class Outcome:
    action: Action
    result: Found | None = None  # what the system holds after a create or update
    error: str | None = None
    extra: list[Found] = field(default_factory=list)  # duplicates a lookup turned up, removed too

    @property
    def ok(self) -> bool:
        return self.error is None


FOUND_SCHEMA: dict[str, pl.DataType] = {
    "key": pl.String(),
    "handle": pl.String(),
    "state": pl.String(),
    "changed_at": pl.Datetime("us"),
    "stamp": pl.String(),
}


def found_frame(rows: Sequence[Found]) -> pl.DataFrame:
    return pl.DataFrame(
        [(f.key, f.handle, f.state, f.changed_at and to_naive_utc(f.changed_at), f.stamp) for f in rows],
        schema=FOUND_SCHEMA,
        orient="row",
    )


def key_frame(keys: Sequence[str]) -> pl.DataFrame:
    return pl.DataFrame({"key": list(keys)}, schema={"key": pl.String})


class WriteTarget(ABC, Generic[Client]):
    """What a write asset declares: the entity it records under, the slots it owns, and how to act on
    one item. Errors are raised as ApiError (AmbiguousWrite where a create may have landed). A target built
    for one run carries that run's data, from which it observes and names its slots."""

    entity: str  # history entity in the lineage store
    system: str  # "consonance" | "dam": where the writes go (names the journal)
    written_event: str  # ledger event for a create or update
    removed_event: str  # ledger event for a slot emptied because it is no longer wanted
    single: bool = False  # slots are existing objects whose fields are set (no create/delete)
    handle_is_asset: bool = False  # the handle is a DAM asset version (a title sheet): its events name it
    batch: int = 1000  # items per session (a DAM lock holds at most LOCK_BATCH assets)

    @abstractmethod
    def create(self, client: Client, key: str, state: str) -> Found: ...

    @abstractmethod
    def update(self, client: Client, found: Found, state: str) -> Found: ...

    @abstractmethod
    def delete(self, client: Client, found: Found) -> None:
        """Remove the object; one already gone is not an error."""

    def lookup(self, client: Client, key: str) -> list[Found]:
        """The objects filling this slot now, found by natural key (after an ambiguous create)."""
        return []

    @contextmanager
    def session(self, client: Client, handles: Sequence[str]) -> Iterator[set[str]]:
        """Hold what the writes need (the DAM's lock); yields the handles held."""
        yield set(handles)

    def journal_stamps(self, client: Client, done: Sequence[Outcome]) -> dict[str, str]:
        """object key → the system's modification stamp after consodam's writes (the echo journal)."""
        return {o.result.handle: o.result.stamp for o in done if o.result is not None and o.result.stamp}

    def journal_fields(self, done: Sequence[Outcome]) -> dict[str, dict[str, Any]]:
        """object key → the fields of the source's record these writes set (as the ingest names them),
        when the write changes a record consodam also ingests (a Consonance stage)."""
        return {}

    # ---- one run ----

    def observe(self, client: Client, store: LineageStore) -> pl.DataFrame:
        """What the system shows now in the slots of this run (a found frame)."""
        return found_frame([])

    def scope(self, found: pl.DataFrame, store: LineageStore) -> list[str]:
        """Every slot this run answers for besides the desired ones (what is found, what was recorded)."""
        return []

    def removal_reasons(
        self, keys: Sequence[str], found: pl.DataFrame, store: LineageStore
    ) -> dict[str, str]:
        """Why each of these slots, no longer wanted, is emptied (asked before `slots`)."""
        return {}

    def settled(self, keys: Sequence[str]) -> dict[str, Settled]:
        """Slots whose object someone closed in the system since consodam recorded it."""
        return {}

    def removal_event(self, found: Found, reason: str) -> Settled | None:
        """The event a removal is recorded as, where it is not the target's `removed_event` with the reason."""
        return None

    def slots(self, keys: Sequence[str], desired: pl.DataFrame) -> pl.DataFrame:
        """Every slot considered (`key`), with what its ledger events name (CONTEXT_COLUMNS) and its
        partition: the write report's rows."""
        return key_frame(keys)
