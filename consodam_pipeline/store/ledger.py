"""The audit ledger: append-only events with content-derived ids, so a replay adds nothing.

One way in: `Ledger.record(conn, events)`, in the caller's transaction — the write engine's record step
for writes, and the flows' own decisions (link history, approvals, stage held, launch flags) alike. Events
arrive as `AuditEvent`s or, for the history a backfill derives (millions of rows), as a frame of ledger
rows; ids are computed column-wise and rows go in through store.bulk, skipping ids the ledger has.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

import polars as pl
import sqlalchemy as sa

from consodam_pipeline.domain.canonical import canonical_json
from consodam_pipeline.domain.timestamps import to_naive_utc, utcnow
from consodam_pipeline.store.bulk import bulk_insert, chunks
from consodam_pipeline.store.first_backfill import (
    LEDGER_APPENDING,
    Appending,
    Backfill,
    first_backfill,
    ledger_holds,
)
from consodam_pipeline.store.schema import audit_ledger

EVENT_COLUMNS: dict[str, pl.DataType] = {
    "event_type": pl.String(),
    "occurred_at": pl.Datetime("us"),
    "isbn13": pl.String(),
    "work_id": pl.String(),
    "dam_asset_id": pl.String(),
    "dam_version": pl.Int64(),
    "role": pl.String(),
    "actor": pl.String(),
    "before_json": pl.String(),
    "after_json": pl.String(),
    "run_id": pl.String(),
}
EVENT_ROWS: dict[str, pl.DataType] = {"event_id": pl.String(), **EVENT_COLUMNS}  # with_event_ids gives these
LEDGER_COLUMNS = [*EVENT_ROWS, "recorded_at"]
_SEP = "\x1f"
_ID_TIME = "%Y-%m-%dT%H:%M:%S%.6f"
# An edition has ~28 ledger events at the reference mix; fetched through the index, each costs a random read.
_SCAN_BELOW_EVENTS_PER_EDITION = 50


@dataclass(frozen=True)
class AuditEvent:
    event_type: str
    occurred_at: datetime
    isbn13: str | None = None
    work_id: str | None = None
    dam_asset_id: str | None = None
    dam_version: int | None = None
    role: str | None = None
    actor: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    run_id: str | None = None
    identity: str | None = None  # when set, names the event instead of its time (writes replayed later)

    @cached_property
    def event_id(self) -> str:
        """Derived from what happened (not when we saw it), so a replay maps to the same id."""
        return str(events_frame([self])["event_id"][0])


def _json_or_null(value: dict[str, Any] | None) -> str | None:
    return None if value is None else canonical_json(value)


def events_frame(events: Iterable[AuditEvent]) -> pl.DataFrame:
    """Events as ledger rows (EVENT_COLUMNS with event_id)."""
    listed = list(events)
    columns = {
        name: [getattr(e, name) for e in listed] for name in EVENT_COLUMNS if not name.endswith("_json")
    }
    columns["occurred_at"] = [to_naive_utc(e.occurred_at) for e in listed]
    columns["before_json"] = [_json_or_null(e.before) for e in listed]
    columns["after_json"] = [_json_or_null(e.after) for e in listed]
    columns["identity"] = [e.identity for e in listed]
    return with_event_ids(pl.DataFrame(columns, schema={**EVENT_COLUMNS, "identity": pl.String()}))


def _identity_text() -> pl.Expr:
    """What an event id is derived from: what happened, not when or by which run we saw it."""
    named_columns = ("isbn13", "work_id", "dam_asset_id", "dam_version", "role", "after_json")
    described = pl.concat_str(
        [
            pl.col("event_type"),
            pl.col("occurred_at").dt.strftime(_ID_TIME),
            *[pl.col(c).cast(pl.String).fill_null("") for c in named_columns],
        ],
        separator=_SEP,
    )
    named = pl.concat_str([pl.col("event_type"), pl.lit("identity"), pl.col("identity")], separator=_SEP)
    return pl.when(pl.col("identity").is_not_null()).then(named).otherwise(described)


def with_event_ids(events: pl.DataFrame) -> pl.DataFrame:
    """EVENT_COLUMNS (plus an optional `identity` that names a replayable write) → with `event_id`."""
    if "identity" not in events.columns:
        events = events.with_columns(pl.lit(None, pl.String).alias("identity"))
    texts = events.select(_identity_text()).to_series().to_list()
    ids = pl.Series("event_id", [hashlib.sha256(t.encode()).hexdigest()[:40] for t in texts], pl.String)
    return events.select(ids, *EVENT_COLUMNS)


class Ledger:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def record(self, conn: sa.Connection, events: Iterable[AuditEvent] | pl.DataFrame) -> int:
        """Append the events the ledger lacks (in the caller's transaction); returns how many were new.
        Takes AuditEvents, or a frame of ledger rows with event ids (`with_event_ids`)."""
        frame = events if isinstance(events, pl.DataFrame) else events_frame(events)
        rows = frame.unique(subset="event_id", keep="first", maintain_order=True).with_columns(
            pl.lit(to_naive_utc(utcnow()), pl.Datetime("us")).alias("recorded_at")
        )
        appending: Appending | None = conn.info.get(LEDGER_APPENDING)
        if appending is not None:  # no index says which ids are there; an edition's events side by side
            fresh = rows.filter(~pl.col("event_id").is_in(appending.held.implode())).sort(
                "isbn13", "occurred_at"
            )
            return bulk_insert(conn, appending.into, fresh.select(LEDGER_COLUMNS))
        return bulk_insert(conn, audit_ledger, rows.select(LEDGER_COLUMNS), skip_existing="event_id")

    @contextmanager
    def backfill(self, conn: sa.Connection, editions: int) -> Iterator[Backfill]:
        """Appends of the history of `editions` editions, in the caller's transaction: a publisher's
        first backfill (less than one event per such edition held) builds the ledger's indexes once, at
        the end (`store.first_backfill`). Readers keep the committed ledger until the commit."""
        with first_backfill(conn, editions) as appended:
            yield appended

    def events_for_isbn(self, isbn13: str, until: datetime | None = None) -> list[dict[str, Any]]:
        a = audit_ledger
        query = sa.select(a).where(a.c.isbn13 == isbn13)
        if until is not None:
            query = query.where(a.c.occurred_at <= to_naive_utc(until))
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query.order_by(a.c.occurred_at, a.c.event_id)).mappings()]

    def first_of(self, event_type: str, after_containing: str | None = None) -> dict[str, Any] | None:
        """The event of this type with the lowest ISBN (optionally one whose `after` holds this text)."""
        a = audit_ledger
        query = sa.select(a).where(a.c.event_type == event_type)
        if after_containing is not None:
            query = query.where(a.c.after_json.contains(after_containing, autoescape=True))
        with self.engine.connect() as conn:
            row = conn.execute(query.order_by(a.c.isbn13, a.c.occurred_at).limit(1)).mappings().first()
        return None if row is None else dict(row)

    def last_named(self, assets: Sequence[str]) -> dict[str, dict[str, Any]]:
        """asset id → what the latest event about it named (isbn13, work_id, dam_version, role): what an
        event about a version the DAM no longer holds still names."""
        a, named = audit_ledger, {}
        columns = (a.c.dam_asset_id, a.c.isbn13, a.c.work_id, a.c.dam_version, a.c.role)
        with self.engine.connect() as conn:
            for chunk in chunks(list(assets)):
                query = sa.select(*columns).where(a.c.dam_asset_id.in_(chunk)).order_by(a.c.occurred_at)
                for row in conn.execute(query).mappings():
                    named[row["dam_asset_id"]] = dict(row)
        return named

    def repeated(self, event_types: Collection[str]) -> int:
        """Rows of these types that repeat another's content (type, edition, asset, role, what was written):
        a write recorded twice."""
        ledger = audit_ledger
        groups = (
            sa.select(sa.func.count().label("n"))
            .where(ledger.c.event_type.in_(list(event_types)))
            .group_by(
                ledger.c.event_type,
                ledger.c.dam_asset_id,
                ledger.c.isbn13,
                ledger.c.role,
                ledger.c.after_json,
            )
            .subquery()
        )
        query = sa.select(sa.func.coalesce(sa.func.sum(groups.c.n - 1), 0)).where(groups.c.n > 1)
        with self.engine.connect() as conn:
            return int(conn.execute(query).scalar_one())

    def size(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(audit_ledger)).scalar_one())

    # ---- links: what the deleted-version check asks ----

    @staticmethod
    def linked_assets(conn: sa.Connection, isbns: Collection[str]) -> set[str]:
        """Every DAM asset id the ledger ever linked to these editions. A slice that holds a good share of
        the ledger's editions reads the link events in one pass (a re-backfill at 100k works: 6 s instead
        of 11 s on SQLite, and no random heap reads on PostgreSQL); a smaller one goes through the ISBN
        index."""
        wanted, a = set(isbns), audit_ledger
        if not ledger_holds(conn, _SCAN_BELOW_EVENTS_PER_EDITION * len(wanted)):
            every_link = sa.select(a.c.isbn13, a.c.dam_asset_id).where(a.c.event_type == "link_created")
            return {
                str(asset) for isbn, asset in conn.execute(every_link.distinct()) if asset and isbn in wanted
            }
        return _linking(conn, a.c.dam_asset_id, a.c.isbn13, sorted(wanted))

    @staticmethod
    def editions_linking(conn: sa.Connection, assets: Collection[str]) -> set[str]:
        """Every edition (ISBN) the ledger ever linked one of these assets to."""
        return _linking(conn, audit_ledger.c.isbn13, audit_ledger.c.dam_asset_id, sorted(assets))

    @staticmethod
    def events_of(
        conn: sa.Connection, isbns: Sequence[str], kinds: Collection[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """ISBN → its ledger events of these kinds."""
        a, by_isbn = audit_ledger, dict[str, list[dict[str, Any]]]()
        for chunk in chunks(list(isbns), 500):
            query = sa.select(a).where(a.c.isbn13.in_(chunk), a.c.event_type.in_(list(kinds)))
            for row in conn.execute(query).mappings():
                by_isbn.setdefault(row["isbn13"], []).append(dict(row))
        return by_isbn


def _linking(
    conn: sa.Connection, answer: sa.Column[Any], by: sa.Column[Any], values: Sequence[str]
) -> set[str]:
    """`answer` of every link_created event whose `by` is one of `values` (an ISBN's assets, an asset's
    ISBNs), through the ledger's index on `by`."""
    found: set[str] = set()
    for chunk in chunks(values, 500):
        query = sa.select(answer).where(by.in_(chunk), audit_ledger.c.event_type == "link_created")
        found |= {str(r) for r in conn.execute(query.distinct()).scalars() if r}
    return found
