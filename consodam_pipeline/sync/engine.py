"""The write engine: every change consodam makes in Consonance or the DAM goes through here.

A write asset declares a `WriteTarget` (what it owns, the natural key of a slot, how to create, update,
delete and look up one item) and hands the engine three views of each slot:
- **desired**: what consodam wants there now (or nothing);
- **found**: what the system shows (several objects in one slot are duplicates);
- **last written**: what consodam recorded the last time it wrote the slot (the lineage store).

plan → execute → verify → record:
1. `plan` decides per slot with one readable rule (`decide`); slots whose single object already equals the
   desired state and the record are dropped column-wise first, so a quiet run costs a join, not a loop.
2. `execute` runs the actions through the target, bounded, creates before the deletes they replace.
   A create that fails ambiguously is followed by a lookup by natural key before any new attempt.
3. Each outcome is verified against what the system returned (or found on lookup).
4. `record` commits history rows, ledger events, failure counts and the echo journal in one transaction.
A failed item is logged, counted and kept pending: nothing is recorded for it, so the next run plans it
again. Drift is fixed every run, because the plan always compares with what the system shows.
"""

from __future__ import annotations

import hashlib
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

import polars as pl

from consodam_pipeline.clients.http import AmbiguousWrite, ApiError
from consodam_pipeline.store.lineage import AuditEvent, LineageStore, to_naive_utc, utcnow

_log = logging.getLogger(__name__)

Client = TypeVar("Client")
Kind = Literal["create", "update", "delete"]
CREATE_ROUNDS = 3  # a create whose reply was lost is looked up, then tried again at most this often
PERSISTENT_AFTER = 3  # the same item failing this many runs in a row fails the check with ERROR

# Why a slot is acted on; removal reasons come from the asset (version_rejected, edition_gone, …).
NEW, CHANGED, MANUAL, DUPLICATE, REPLACED = (
    "new",
    "changed",
    "manual_change_overwritten",
    "duplicate",
    "replaced",
)


def state_json(state: Mapping[str, Any]) -> str:
    """Canonical JSON (sorted keys, compact): equal states compare equal as text."""
    return json.dumps(state, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def state_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Found:
    """An object in the system that fills a slot consodam owns."""

    key: str
    handle: str  # its id in the system
    state: str  # canonical JSON of the fields consodam owns in it
    changed_at: datetime | None = None  # when the system last changed it; None: read just now
    stamp: str | None = None  # the system's modification stamp (the echo journal keeps ours)


@dataclass(frozen=True)
class Last:
    """What consodam last recorded for a slot."""

    hash: str
    handle: str | None
    at: datetime


@dataclass(frozen=True)
class Action:
    kind: Kind
    key: str
    reason: str
    desired: str | None = None  # the state to write (create, update)
    found: Found | None = None  # the object acted on (update, delete)
    after_create: bool = False  # a delete that waits for its slot's create to succeed


@dataclass
class Decision:
    actions: list[Action] = field(default_factory=list)
    adopt: str | None = None  # handle of an object already right, recorded without a write
    forget: str | None = None  # reason an owned, absent, unwanted slot's record is closed
    stale: bool = False  # the observation predates consodam's own write: nothing to do


def decide(
    key: str,
    desired: str | None,
    found: Sequence[Found],
    last: Last | None,
    *,
    single: bool,
    removal_reason: str,
) -> Decision:
    """The rule for one slot. `single`: the slot is always one existing object whose fields consodam sets
    (DAM metadata); otherwise consodam creates and deletes the objects (Consonance resources)."""
    if desired is None:
        if found:
            return Decision([Action("delete", key, removal_reason, found=f) for f in found])
        return Decision(forget=removal_reason if last is not None else None)
    matching = [f for f in found if f.state == desired]
    if matching:
        keep = next((f for f in matching if last is not None and f.handle == last.handle), None)
        keep = keep or min(matching, key=lambda f: f.handle)
        actions = [Action("delete", key, DUPLICATE, found=f) for f in matching if f is not keep]
        actions += [Action("delete", key, REPLACED, found=f) for f in found if f.state != desired]
        recorded = (
            last is not None and last.hash == state_hash(desired) and last.handle in (None, keep.handle)
        )
        return Decision(actions, adopt=None if recorded else keep.handle)
    if single and found:
        current = found[0]
        ours = last is not None and last.hash == state_hash(desired)
        if ours and current.changed_at is not None and current.changed_at <= last.at:  # type: ignore[union-attr]
            return Decision(stale=True)
        manual = (
            last is not None
            and state_hash(current.state) != last.hash
            and (current.changed_at is None or current.changed_at > last.at)
        )
        reason = MANUAL if manual else CHANGED if last is not None else NEW
        return Decision([Action("update", key, reason, desired=desired, found=current)])
    mine = next((f for f in found if last is not None and f.handle == last.handle), None)
    manual = mine is not None and last is not None and state_hash(mine.state) != last.hash
    reason = MANUAL if manual else CHANGED if found or last is not None else NEW
    actions = [Action("create", key, reason, desired=desired, found=mine if manual else None)]
    actions += [Action("delete", key, REPLACED, found=f, after_create=True) for f in found]
    return Decision(actions)


@dataclass
class Plan:
    decisions: dict[str, Decision]
    desired: dict[str, str | None]
    last: dict[str, Last]
    unchanged: int  # slots dropped by the column-wise pre-filter: already right and recorded

    @property
    def actions(self) -> list[Action]:
        return [a for d in self.decisions.values() for a in d.actions]

    def count(self, kind: str) -> int:
        return sum(1 for a in self.actions if a.kind == kind)


class WriteTarget(ABC, Generic[Client]):
    """What a write asset declares: the entity it records under, the slots it owns, and how to act on
    one item. Errors are raised as ApiError (AmbiguousWrite where a create may have landed)."""

    entity: str  # history entity in the lineage store
    system: str  # "consonance" | "dam": where the writes go (names the journal)
    written_event: str  # ledger event for a create or update
    removed_event: str  # ledger event for a slot emptied because it is no longer wanted
    single: bool = False  # slots are existing objects whose fields are set (no create/delete)
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


@dataclass
class Outcome:
    action: Action
    result: Found | None = None  # what the system holds after a create or update
    error: str | None = None
    extra: list[Found] = field(default_factory=list)  # duplicates a lookup turned up, removed too

    @property
    def ok(self) -> bool:
        return self.error is None


def plan_writes(
    target: WriteTarget[Any],
    store: LineageStore,
    desired: pl.DataFrame,
    found: pl.DataFrame,
    scope: Sequence[str],
    removal_reasons: Mapping[str, str] | None = None,
) -> Plan:
    """`desired`: key, state (null: nothing wanted); `found`: key, handle, state, changed_at, stamp;
    `scope`: every slot this run is responsible for (desired or not)."""
    keys = pl.Series("key", list(dict.fromkeys([*desired["key"].to_list(), *scope])), pl.String)
    last_rows = store.open_records(target.entity, keys.to_list())
    settled = _already_right(desired, found, last_rows)
    todo = keys.filter(~keys.is_in(settled.implode()))
    wanted = dict(desired.filter(pl.col("key").is_in(todo.implode())).select("key", "state").iter_rows())
    seen: dict[str, list[Found]] = {}
    for row in found.filter(pl.col("key").is_in(todo.implode())).iter_rows(named=True):
        seen.setdefault(row["key"], []).append(_found(row))
    last = {
        r["record_key"]: Last(r["content_hash"], r["handle"], r["valid_from"])
        for r in last_rows.filter(pl.col("record_key").is_in(todo.implode())).iter_rows(named=True)
    }
    reasons = removal_reasons or {}
    decisions = {
        key: decide(key, wanted.get(key), seen.get(key, []), last.get(key), single=target.single,
                    removal_reason=reasons.get(key, "no_longer_wanted"))
        for key in todo.to_list()
    }  # fmt: skip
    return Plan(decisions, wanted, last, unchanged=settled.len())


def _found(row: Mapping[str, Any]) -> Found:
    return Found(row["key"], row["handle"], row["state"], row.get("changed_at"), row.get("stamp"))


def _already_right(desired: pl.DataFrame, found: pl.DataFrame, last: pl.DataFrame) -> pl.Series:
    """Slots holding exactly one object equal to the desired state, recorded as such: `decide` would
    do nothing for them, so they skip it (most slots, on most runs)."""
    hashed = desired.filter(pl.col("state").is_not_null()).with_columns(
        pl.col("state").map_batches(_hashes, return_dtype=pl.String).alias("hash")
    )
    single = found.filter(pl.col("key").is_unique())
    right = (
        hashed.join(single.select("key", "handle", pl.col("state").alias("found")), on="key")
        .join(last.select("record_key", "content_hash", "handle"), left_on="key", right_on="record_key",
              suffix="_last")
        .filter(
            (pl.col("found") == pl.col("state")) & (pl.col("content_hash") == pl.col("hash"))
            & (pl.col("handle_last").is_null() | (pl.col("handle_last") == pl.col("handle")))
        )
    )  # fmt: skip
    return right["key"]


def _hashes(texts: pl.Series) -> pl.Series:
    return pl.Series([state_hash(t) for t in texts], dtype=pl.String)


def execute(target: WriteTarget[Client], client: Client, plan: Plan, workers: int = 4) -> list[Outcome]:
    """Creates and updates first, then deletes (a replaced object only once its successor exists);
    bounded concurrency, one session per batch. Failures are returned, never raised."""
    first = [a for a in plan.actions if a.kind != "delete"]
    outcomes = _run(target, client, first, workers)
    created = {o.action.key for o in outcomes if o.ok}
    deletes = [a for a in plan.actions if a.kind == "delete" and (not a.after_create or a.key in created)]
    held_back = [
        Outcome(a, error="kept: its replacement was not written")
        for a in plan.actions
        if a.kind == "delete" and a.after_create and a.key not in created
    ]
    extra = [Action("delete", o.action.key, DUPLICATE, found=f) for o in outcomes for f in o.extra]
    return outcomes + _run(target, client, deletes + extra, workers) + held_back


def _run(target: WriteTarget[Client], client: Client, actions: list[Action], workers: int) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for start in range(0, len(actions), target.batch):
        outcomes += _run_batch(target, client, actions[start : start + target.batch], workers)
    return outcomes


def _run_batch(
    target: WriteTarget[Client], client: Client, batch: list[Action], workers: int
) -> list[Outcome]:
    """One session (the DAM's lock) around a batch. A session that cannot open fails the batch's items,
    which stay pending; one that cannot close keeps what was written (the lock lapses on the server)."""
    handles = [a.found.handle for a in batch if a.found is not None]
    done: list[Outcome] | None = None
    try:
        with target.session(client, handles) as held, ThreadPoolExecutor(max_workers=workers) as pool:

            def one(action: Action) -> Outcome:
                if action.found is not None and action.found.handle not in held:
                    return Outcome(action, error=f"{action.found.handle} is locked by someone else")
                return _apply(target, client, action)

            done = list(pool.map(one, batch))
    except ApiError as exc:
        if done is None:
            return [Outcome(a, error=f"could not open the write session: {exc}") for a in batch]
        _log.warning("could not close the write session after %d items: %s", len(done), exc)
    assert done is not None
    return done


def _apply(target: WriteTarget[Client], client: Client, action: Action) -> Outcome:
    try:
        if action.kind == "delete":
            assert action.found is not None
            target.delete(client, action.found)
            return Outcome(action)
        assert action.desired is not None
        if action.kind == "update":
            assert action.found is not None
            return _verified(action, target.update(client, action.found, action.desired))
        return _create(target, client, action)
    except ApiError as exc:
        return Outcome(action, error=str(exc))


def _create(target: WriteTarget[Client], client: Client, action: Action) -> Outcome:
    error: ApiError | None = None
    for _ in range(CREATE_ROUNDS):
        try:
            return _verified(action, target.create(client, action.key, str(action.desired)))
        except AmbiguousWrite as exc:
            error = exc
            landed = sorted((f for f in target.lookup(client, action.key) if f.state == action.desired),
                            key=lambda f: f.handle)  # fmt: skip
            if landed:  # it was created after all: keep one, the rest are duplicates
                return Outcome(action, result=landed[0], extra=landed[1:])
    return Outcome(action, error=str(error))


def _verified(action: Action, result: Found) -> Outcome:
    if result.state != action.desired:
        return Outcome(action, result, error=f"verification failed: the system shows {result.state[:200]}")
    return Outcome(action, result)


@dataclass
class WriteResult:
    plan: Plan
    outcomes: list[Outcome]
    events: int = 0
    latest: list[AuditEvent] = field(default_factory=list)  # the newest ledger events, for the UI

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.ok]

    def done(self, kind: str, reason: str | None = None) -> int:
        return sum(
            1 for o in self.outcomes
            if o.ok and o.action.kind == kind and (reason is None or o.action.reason == reason)
        )  # fmt: skip


# keys → {key: {isbn13, work_id, dam_asset_id, dam_version, role}}: what a ledger event says it is about
LATEST = 10


def merged(results: Sequence[WriteResult]) -> WriteResult:
    """Several engine passes of one asset read as one result (later passes win for a slot they share)."""
    plan = Plan({}, {}, {}, unchanged=0)
    outcomes: list[Outcome] = []
    events = 0
    latest: list[AuditEvent] = []
    for result in results:
        plan.decisions |= result.plan.decisions
        plan.desired |= result.plan.desired
        plan.last |= result.plan.last
        plan.unchanged += result.plan.unchanged
        outcomes += result.outcomes
        events += result.events
        latest = (latest + result.latest)[-LATEST:]
    return WriteResult(plan, outcomes, events, latest)


EventContext = Callable[[Sequence[str]], Mapping[str, Mapping[str, Any]]]


def frame_context(frame: pl.DataFrame, key: str = "key") -> EventContext:
    """Event context from a frame with a key column and any of the ledger's context columns."""
    columns = [c for c in ("isbn13", "work_id", "dam_asset_id", "dam_version", "role") if c in frame.columns]

    def context(keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        wanted = frame.filter(pl.col(key).is_in(pl.Series(list(keys), dtype=pl.String).implode()))
        rows = wanted.unique(subset=key, keep="first").select(key, *columns).iter_rows(named=True)
        return {
            row.pop(key): {**row, "work_id": None if row.get("work_id") is None else str(row["work_id"])}
            for row in rows
        }

    return context


def record(
    target: WriteTarget[Client],
    client: Client,
    store: LineageStore,
    plan: Plan,
    outcomes: list[Outcome],
    run_id: str,
    context: EventContext,
) -> WriteResult:
    """History, ledger, failure counts and the echo journal in one transaction."""
    now = utcnow()
    ok = [o for o in outcomes if o.ok]
    kept = _kept(plan, ok)
    closed = _closed(plan, outcomes)
    events = _events(target, plan, ok, now, run_id, context)
    stamps = target.journal_stamps(client, ok) if ok else {}
    records = pl.DataFrame(
        [(key, state_hash(state), state_json({"state": json.loads(state), "handle": handle}))
         for key, (state, handle) in kept.items()],
        schema={"record_key": pl.String, "content_hash": pl.String, "payload": pl.String}, orient="row",
    )  # fmt: skip
    failures = [(o.action.key, o.action.kind, o.error or "") for o in outcomes if not o.ok]
    with store.engine.begin() as conn:
        store.apply_snapshot(conn, target.entity, records, observed_at=now, complete=False, run_id=run_id)
        store.add_subjects(conn, target.entity, _subjects(kept, context))
        store.close_records(conn, target.entity, sorted(closed), now)
        appended = store.append_events(conn, events)
        store.track_failures(conn, target.entity, failures, settled=list(plan.decisions), run_id=run_id)
        store.journal_writes(conn, target.system, stamps, fields=target.journal_fields(ok), run_id=run_id)
    return WriteResult(plan, outcomes, appended, events[-LATEST:])


def _subjects(kept: Mapping[str, Any], context: EventContext) -> pl.DataFrame:
    """(record_key, isbn13, work_id) of each slot recorded: the edition or work its ledger events name."""
    named = context(sorted(kept))
    return pl.DataFrame(
        [(key, about.get("isbn13"), about.get("work_id")) for key, about in named.items()],
        schema={"record_key": pl.String, "isbn13": pl.String, "work_id": pl.String},
        orient="row",
    )


def _kept(plan: Plan, ok: list[Outcome]) -> dict[str, tuple[str, str]]:
    """key → (state, handle) to record: what was written, or found already right."""
    kept = {k: (str(plan.desired[k]), d.adopt) for k, d in plan.decisions.items() if d.adopt is not None}
    for outcome in ok:
        if outcome.result is not None and outcome.action.kind != "delete":
            kept[outcome.action.key] = (outcome.result.state, outcome.result.handle)
    return kept


def _closed(plan: Plan, outcomes: list[Outcome]) -> dict[str, str]:
    """key → reason for recorded slots emptied for good: nothing wanted, and every removal succeeded."""
    closed = {k: str(d.forget) for k, d in plan.decisions.items() if d.forget is not None}
    failed = {o.action.key for o in outcomes if not o.ok}
    for outcome in outcomes:
        key = outcome.action.key
        if plan.desired.get(key) is None and key in plan.last and key not in failed:
            closed[key] = outcome.action.reason
    return closed


def _events(
    target: WriteTarget[Any],
    plan: Plan,
    ok: list[Outcome],
    now: datetime,
    run_id: str,
    context: EventContext,
) -> list[AuditEvent]:
    """One event per write, removal, duplicate removed and manual change overwritten. Ids are derived
    from what was written, not when, so a replay after a crash adds nothing."""

    about = context(sorted({o.action.key for o in ok} | {k for k, d in plan.decisions.items() if d.forget}))

    def event(key: str, kind: str, before: Any, after: Any, identity: str) -> AuditEvent:
        return AuditEvent(event_type=kind, occurred_at=now, before=before, after=after, run_id=run_id,
                          actor="consodam", identity=f"{key}|{identity}", **about.get(key, {}))  # fmt: skip

    replaced: dict[str, list[dict[str, Any]]] = {}
    events = []
    for outcome in ok:
        action, found = outcome.action, outcome.action.found
        if action.kind != "delete" or found is None:
            continue
        if action.reason == REPLACED:
            replaced.setdefault(action.key, []).append(_described(found))
        elif action.reason == DUPLICATE:
            events.append(event(action.key, "duplicate_removed", _described(found), None, found.handle))
        else:
            events.append(event(action.key, target.removed_event, _described(found), {"reason": action.reason},
                                f"{found.handle}|{action.reason}"))  # fmt: skip
    for key, decision in plan.decisions.items():
        if decision.forget is not None:
            after = {"reason": decision.forget, "already_absent": True}
            events.append(event(key, target.removed_event, None, after, f"absent|{decision.forget}"))
    for outcome in ok:
        action, result = outcome.action, outcome.result
        if action.kind == "delete" or result is None:
            continue
        last = plan.last.get(action.key)
        last_hash = last.hash if last else ""
        if action.reason == MANUAL and action.found is not None:
            events.append(event(action.key, "manual_change_overwritten", {"last_written_hash": last_hash},
                                _described(action.found), f"manual|{last_hash}|{action.found.state}"))  # fmt: skip
        before = {"replaced": replaced[action.key]} if action.key in replaced else (
            _described(action.found) if action.found else None)  # fmt: skip
        identity = f"{last_hash}|{state_hash(result.state)}|{result.handle}"
        events.append(event(action.key, target.written_event, before, _described(result), identity))
    return events


def _described(found: Found) -> dict[str, Any]:
    return {"handle": found.handle, "state": json.loads(found.state)}


def sync(
    target: WriteTarget[Client],
    client: Client,
    store: LineageStore,
    *,
    desired: pl.DataFrame,
    found: pl.DataFrame,
    scope: Sequence[str],
    run_id: str,
    context: EventContext,
    removal_reasons: Mapping[str, str] | None = None,
    log: logging.Logger | Any | None = None,
    workers: int = 4,
) -> WriteResult:
    """plan → execute → verify → record, and every failure logged with its endpoint and reason."""
    plan = plan_writes(target, store, desired, found, scope, removal_reasons)
    outcomes = execute(target, client, plan, workers)
    for failure in (o for o in outcomes if not o.ok):
        if log is not None:
            log.warning(f"{target.entity} {failure.action.kind} {failure.action.key}: {failure.error}")
    return record(target, client, store, plan, outcomes, run_id, context)


FOUND_SCHEMA: dict[str, pl.DataType] = {
    "key": pl.String(), "handle": pl.String(), "state": pl.String(), "changed_at": pl.Datetime("us"),
    "stamp": pl.String(),
}  # fmt: skip


def found_frame(rows: Sequence[Found]) -> pl.DataFrame:
    return pl.DataFrame(
        [(f.key, f.handle, f.state, f.changed_at and to_naive_utc(f.changed_at), f.stamp) for f in rows],
        schema=FOUND_SCHEMA,
        orient="row",
    )
