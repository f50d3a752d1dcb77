"""The write engine: every change consodam makes in Consonance or the DAM goes through here.

A write asset declares a `WriteTarget` (sync/target.py: what it owns, the natural key of a slot, how to
create, update, delete and look up one item) and hands the engine three views of each slot:
- **desired**: what consodam wants there now (or nothing);
- **found**: what the system shows (several objects in one slot are duplicates);
- **last written**: what consodam recorded the last time it wrote the slot (the lineage store).

plan → execute → verify → record:
1. `plan` (sync/plan.py) decides per slot with one readable rule; slots already right are dropped first.
2. `execute` (here) runs the actions through the target, bounded, creates before the deletes they replace.
   A create that fails ambiguously is followed by a lookup by natural key before any new attempt.
3. Each outcome is verified against what the system returned (or found on lookup).
4. `record` (sync/record.py) commits history rows, ledger events, failure counts and the echo journal in
   one transaction.
A failed item is logged, counted and kept pending: nothing is recorded for it, so the next run plans it
again. Drift is fixed every run, because the plan always compares with what the system shows.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import polars as pl

from consodam_pipeline.clients.http import AmbiguousWrite, ApiError
from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.sync.plan import DUPLICATE, Plan, plan_writes
from consodam_pipeline.sync.record import EventContext, WriteResult, record
from consodam_pipeline.sync.target import Action, Client, Found, Outcome, WriteTarget

_log = logging.getLogger(__name__)

CREATE_ROUNDS = 3  # a create whose reply was lost is looked up, then tried again at most this often


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
            landed = [f for f in target.lookup(client, action.key) if f.state == action.desired]
            landed.sort(key=lambda f: f.handle)
            if landed:  # it was created after all: keep one, the rest are duplicates
                return Outcome(action, result=landed[0], extra=landed[1:])
    return Outcome(action, error=str(error))


def _verified(action: Action, result: Found) -> Outcome:
    if result.state != action.desired:
        return Outcome(action, result, error=f"verification failed: the system shows {result.state[:200]}")
    return Outcome(action, result)


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
