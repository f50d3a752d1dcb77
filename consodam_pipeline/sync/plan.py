"""The write engine's plan: one readable rule per slot (`decide`), applied to every slot a run answers for
(`plan_writes`), after a column-wise pass drops the slots already right and recorded (most slots, on most
runs). A hypothesis test checks that the pass drops exactly the slots where the rule does nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.sync.target import Action, Found, Settled, WriteTarget

PERSISTENT_AFTER = 3  # the same item failing this many runs in a row fails the check with ERROR

# Why a slot is acted on; removal reasons come from the target (version_rejected, edition_gone, …).
NEW, CHANGED, MANUAL, DUPLICATE, REPLACED = (
    "new",
    "changed",
    "manual_change_overwritten",
    "duplicate",
    "replaced",
)


def state_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Last:
    """What consodam last recorded for a slot."""

    hash: str
    handle: str | None
    at: datetime


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
    settled: dict[str, Settled] = field(default_factory=dict)  # recorded objects someone closed meanwhile

    @property
    def actions(self) -> list[Action]:
        return [a for d in self.decisions.values() for a in d.actions]

    def count(self, kind: str) -> int:
        return sum(1 for a in self.actions if a.kind == kind)


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
    last_rows = store.history.open_records(target.entity, keys.to_list())
    closed_elsewhere = target.settled(last_rows["record_key"].to_list())
    last_rows = last_rows.filter(~pl.col("record_key").is_in(list(closed_elsewhere)))
    right = _already_right(desired, found, last_rows)
    todo = keys.filter(~keys.is_in(right.implode())).to_list()
    final = [k for k, s in closed_elsewhere.items() if s.final]
    wanted = dict(
        desired.filter(pl.col("key").is_in(todo) & ~pl.col("key").is_in(final))
        .select("key", "state")
        .iter_rows()
    )
    seen: dict[str, list[Found]] = {}
    for row in found.filter(pl.col("key").is_in(todo)).iter_rows(named=True):
        seen.setdefault(row["key"], []).append(_found(row))
    last = {
        r["record_key"]: Last(r["content_hash"], r["handle"], r["valid_from"])
        for r in last_rows.filter(pl.col("record_key").is_in(todo)).iter_rows(named=True)
    }
    reasons = removal_reasons or {}
    decisions = {
        key: decide(
            key,
            wanted.get(key),
            seen.get(key, []),
            last.get(key),
            single=target.single,
            removal_reason=reasons.get(key, "no_longer_wanted"),
        )
        for key in todo
    }
    return Plan(decisions, wanted, last, unchanged=right.len(), settled=closed_elsewhere)


def _found(row: Mapping[str, Any]) -> Found:
    return Found(row["key"], row["handle"], row["state"], row.get("changed_at"), row.get("stamp"))


def _already_right(desired: pl.DataFrame, found: pl.DataFrame, last: pl.DataFrame) -> pl.Series:
    """Slots holding exactly one object equal to the desired state, recorded as such: `decide` would
    do nothing for them, so they skip it (most slots, on most runs)."""
    hashed = desired.filter(pl.col("state").is_not_null()).with_columns(
        pl.col("state").map_batches(_hashes, return_dtype=pl.String).alias("hash")
    )
    single = found.filter(pl.col("key").is_unique())
    recorded = last.select(
        pl.col("record_key").alias("key"), "content_hash", pl.col("handle").alias("handle_last")
    )
    same_object = pl.col("handle_last").is_null() | (pl.col("handle_last") == pl.col("handle"))
    right = (
        hashed.join(single.select("key", "handle", pl.col("state").alias("found")), on="key")
        .join(recorded, on="key")
        .filter(
            (pl.col("found") == pl.col("state")) & (pl.col("content_hash") == pl.col("hash")) & same_object
        )
    )
    return right["key"]


def _hashes(texts: pl.Series) -> pl.Series:
    return pl.Series([state_hash(t) for t in texts], dtype=pl.String)
