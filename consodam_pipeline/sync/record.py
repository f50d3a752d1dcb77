"""The write engine's record step: history rows, ledger events, failure counts and the echo journal of one
engine pass, in one transaction; and what a pass reports.

Every event names its slot's edition and work (and its asset version and role where it has one): from the
context the asset gives, completed where that names none from what the store recorded the slot about.
Event ids derive from what was written, not when, so a replay after a crash adds nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from consodam_pipeline.domain.canonical import canonical_json
from consodam_pipeline.domain.timestamps import utcnow
from consodam_pipeline.store.ledger import AuditEvent
from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.sync.plan import DUPLICATE, MANUAL, REPLACED, Plan, state_hash
from consodam_pipeline.sync.target import (
    CONTEXT_COLUMNS,
    PERIOD,
    SHARED,
    Client,
    Found,
    Outcome,
    WriteTarget,
)


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
        matching = (o for o in self.outcomes if o.ok and o.action.kind == kind)
        return sum(1 for o in matching if reason is None or o.action.reason == reason)


LATEST = 10  # ledger events a materialization shows as its latest changes


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
        plan.settled |= result.plan.settled
        plan.unchanged += result.plan.unchanged
        outcomes += result.outcomes
        events += result.events
        latest = (latest + result.latest)[-LATEST:]
    return WriteResult(plan, outcomes, events, latest)


# keys → {key: {isbn13, work_id, dam_asset_id, dam_version, role}}: what a ledger event says it is about
EventContext = Callable[[Sequence[str]], Mapping[str, Mapping[str, Any]]]


def frame_context(frame: pl.DataFrame, key: str = "key") -> EventContext:
    """Event context from a frame with a key column and any of the ledger's context columns."""
    columns = [c for c in (*CONTEXT_COLUMNS, SHARED, PERIOD) if c in frame.columns]

    def context(keys: Sequence[str]) -> dict[str, dict[str, Any]]:
        wanted = frame.filter(pl.col(key).is_in(pl.Series(list(keys), dtype=pl.String).implode()))
        rows = wanted.unique(subset=key, keep="first").select(key, *columns).iter_rows(named=True)
        return {
            row.pop(key): {**row, "work_id": None if row.get("work_id") is None else str(row["work_id"])}
            for row in rows
        }

    return context


def _named(
    target: WriteTarget[Any], store: LineageStore, context: EventContext, keys: Sequence[str]
) -> EventContext:
    """The context, where it names no edition or work for a slot, completed from what the store recorded the
    slot about (a task made moot whose edition left the run's data): every event names its edition."""
    given = {k: dict(v) for k, v in context(keys).items()}
    unnamed = [k for k in keys if not (given.get(k, {}).get("isbn13") or given.get(k, {}).get("work_id"))]
    for key, subject in store.history.subjects(target.entity, unnamed).items():
        given[key] = {**given.get(key, {}), **subject}
    return lambda wanted: {k: given[k] for k in wanted if k in given}


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
    closed = sorted({*_closed(plan, outcomes), *plan.settled})
    named = _named(target, store, context, sorted({*closed, *kept, *(o.action.key for o in ok)}))
    events = _events(target, plan, ok, now, run_id, named)
    stamps = target.journal_stamps(client, ok) if ok else {}
    payloads = [
        (key, state_hash(state), canonical_json({"state": json.loads(state), "handle": handle}))
        for key, (state, handle) in kept.items()
    ]
    records = pl.DataFrame(
        payloads, schema=dict.fromkeys(("record_key", "content_hash", "payload"), pl.String), orient="row"
    )
    failures = [(o.action.key, o.action.kind, o.error or "") for o in outcomes if not o.ok]
    periods = {key: about.get(PERIOD) for key, about in context([f[0] for f in failures]).items()}
    with store.engine.begin() as conn:
        # Closed first: a slot someone closed in the system and consodam opens again gets a new record.
        store.history.close_records(conn, target.entity, closed, now)
        store.history.apply_snapshot(
            conn, target.entity, records, observed_at=now, complete=False, run_id=run_id
        )
        store.history.add_subjects(conn, target.entity, _subjects(kept, named))
        appended = store.ledger.record(conn, events)
        store.bookkeeping.track_failures(
            conn, target.entity, failures, settled=list(plan.decisions), run_id=run_id, periods=periods
        )
        store.bookkeeping.journal_writes(
            conn, target.system, stamps, fields=target.journal_fields(ok), run_id=run_id
        )
    return WriteResult(plan, outcomes, appended, events[-LATEST:])


def _subjects(kept: Mapping[str, Any], context: EventContext) -> pl.DataFrame:
    """(record_key, isbn13, work_id) of each slot recorded: the edition or work its ledger events name, and
    for a slot about an asset the work's editions share (SHARED), the work itself, so every edition's audit
    finds it."""
    rows = []
    for key, about in context(sorted(kept)).items():
        rows.append((key, about.get("isbn13"), about.get("work_id")))
        if about.get(SHARED) and about.get("work_id"):
            rows.append((key, None, about.get("work_id")))
    return pl.DataFrame(
        rows, schema=dict.fromkeys(("record_key", "isbn13", "work_id"), pl.String), orient="row"
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


@dataclass
class _EventBuilder:
    """Ledger events of one record step: named by their slot's context, ids derived from what was written,
    not when, so a replay after a crash adds nothing."""

    now: datetime
    run_id: str
    about: Mapping[str, Mapping[str, Any]]
    events: list[AuditEvent] = field(default_factory=list)

    def add(self, key: str, kind: str, before: Any, after: Any, identity: str, **fields: Any) -> None:
        about = {k: v for k, v in self.about.get(key, {}).items() if k not in (SHARED, PERIOD)}
        named = {"actor": "consodam", "occurred_at": self.now, **about, **fields}
        self.events.append(
            AuditEvent(
                event_type=kind,
                before=before,
                after=after,
                run_id=self.run_id,
                identity=f"{key}|{identity}",
                **named,
            )
        )


def _events(
    target: WriteTarget[Any],
    plan: Plan,
    ok: list[Outcome],
    now: datetime,
    run_id: str,
    context: EventContext,
) -> list[AuditEvent]:
    """One event per write, removal, duplicate removed, manual change overwritten, and object someone
    closed in the system."""
    keys = {o.action.key for o in ok} | {k for k, d in plan.decisions.items() if d.forget} | set(plan.settled)
    out = _EventBuilder(now, run_id, context(sorted(keys)))
    for key, settled in plan.settled.items():
        at = {"occurred_at": settled.at} if settled.at else {}
        out.add(
            key, settled.event_type, None, dict(settled.after), settled.identity, actor=settled.actor, **at
        )
    replaced: dict[str, list[dict[str, Any]]] = {}
    for outcome in ok:
        action, found = outcome.action, outcome.action.found
        if action.kind != "delete" or found is None:
            continue
        if action.reason == REPLACED:
            replaced.setdefault(action.key, []).append(_described(found))
        elif action.reason == DUPLICATE:
            out.add(action.key, "duplicate_removed", _described(found), None, found.handle)
        elif (named := target.removal_event(found, action.reason)) is not None:
            after, actor = dict(named.after), named.actor
            out.add(action.key, named.event_type, _described(found), after, named.identity, actor=actor)
        else:
            why = {"reason": action.reason}
            out.add(
                action.key, target.removed_event, _described(found), why, f"{found.handle}|{action.reason}"
            )
    for key, decision in plan.decisions.items():
        if decision.forget is not None:
            after = {"reason": decision.forget, "already_absent": True}
            out.add(key, target.removed_event, None, after, f"absent|{decision.forget}")
    for outcome in ok:
        action, result = outcome.action, outcome.result
        if action.kind == "delete" or result is None:
            continue
        last = plan.last.get(action.key)
        last_hash = last.hash if last else ""
        if action.reason == MANUAL and action.found is not None:
            found_there = _described(action.found)
            identity = f"manual|{last_hash}|{action.found.state}"
            out.add(
                action.key,
                "manual_change_overwritten",
                {"last_written_hash": last_hash},
                found_there,
                identity,
            )
        if action.key in replaced:
            before: Any = {"replaced": replaced[action.key]}
        else:
            before = _described(action.found) if action.found else None
        identity = f"{last_hash}|{state_hash(result.state)}|{result.handle}"
        about = out.about.get(action.key, {})
        asset = (
            {"dam_asset_id": result.handle}
            if target.handle_is_asset and not about.get("dam_asset_id")
            else {}
        )
        out.add(action.key, target.written_event, before, _described(result), identity, **asset)
    return out.events


def _described(found: Found) -> dict[str, Any]:
    return {"handle": found.handle, "state": json.loads(found.state)}
