"""The write engine's rule (`decide`), its column-wise pre-filter checked against it, and execute/record
with a target that fails on demand: ambiguous creates are looked up, failures stay pending and count."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consodam_pipeline.clients.http import AmbiguousWrite, ApiError
from consodam_pipeline.domain.canonical import canonical_json
from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.sync.engine import sync
from consodam_pipeline.sync.plan import (
    DUPLICATE,
    MANUAL,
    REPLACED,
    Decision,
    Last,
    decide,
    plan_writes,
    state_hash,
)
from consodam_pipeline.sync.target import Found, WriteTarget, found_frame

T0 = datetime(2026, 1, 1)
A, B = canonical_json({"v": "a"}), canonical_json({"v": "b"})


def test_nothing_wanted_removes_what_is_there_and_forgets_the_record() -> None:
    last = Last(state_hash(A), "1", T0)
    gone = decide("k", None, [Found("k", "1", A)], last, single=False, removal_reason="version_rejected")
    assert [(a.kind, a.reason, a.found.handle if a.found else None) for a in gone.actions] == [
        ("delete", "version_rejected", "1")
    ]
    absent = decide("k", None, [], last, single=False, removal_reason="edition_gone")
    assert absent.actions == [] and absent.forget == "edition_gone"


def test_duplicates_keep_the_recorded_one_and_replaced_go_after_the_create() -> None:
    last = Last(state_hash(A), "7", T0)
    found = [Found("k", "3", A), Found("k", "7", A), Found("k", "9", B)]
    decision = decide("k", A, found, last, single=False, removal_reason="x")
    assert [(a.reason, a.found.handle) for a in decision.actions if a.found] == [
        (DUPLICATE, "3"),
        (REPLACED, "9"),
    ]
    assert decision.adopt is None  # "7" is recorded already
    fresh = decide("k", B, [Found("k", "3", A)], None, single=False, removal_reason="x")
    assert [(a.kind, a.after_create) for a in fresh.actions] == [("create", False), ("delete", True)]


def test_fields_stale_observation_manual_change_and_new_intent() -> None:
    ours = Last(state_hash(A), None, T0)
    stale = decide(
        "k", A, [Found("k", "k", B, T0 - timedelta(seconds=5))], ours, single=True, removal_reason=""
    )
    assert stale.stale and not stale.actions
    hand = decide(
        "k", A, [Found("k", "k", B, T0 + timedelta(seconds=5))], ours, single=True, removal_reason=""
    )
    assert [(a.kind, a.reason) for a in hand.actions] == [("update", MANUAL)]
    moved = decide(
        "k", B, [Found("k", "k", A, T0 - timedelta(seconds=5))], ours, single=True, removal_reason=""
    )
    assert [(a.kind, a.reason) for a in moved.actions] == [("update", "changed")]


def test_a_hand_edited_resource_is_replaced_and_reported() -> None:
    last = Last(state_hash(A), "5", T0)
    decision = decide("k", A, [Found("k", "5", B)], last, single=False, removal_reason="")
    assert [(a.kind, a.reason) for a in decision.actions] == [("create", MANUAL), ("delete", REPLACED)]


# ---- the column-wise pre-filter drops exactly the slots where decide() does nothing ----

STATES = st.sampled_from([A, B])


Slot = tuple[str, str | None, list[Found], tuple[str, str | None] | None]


@st.composite
def slots(draw: st.DrawFn) -> list[Slot]:
    out = []
    for i in range(draw(st.integers(1, 12))):
        key = f"k{i}"
        desired = draw(st.one_of(st.none(), STATES))
        found = [
            Found(key, str(h), draw(STATES))
            for h in draw(st.lists(st.integers(1, 4), max_size=3, unique=True))
        ]
        last = draw(
            st.one_of(st.none(), st.tuples(STATES, st.one_of(st.none(), st.sampled_from(["1", "2", "3"]))))
        )
        out.append((key, desired, found, last))
    return out


class _Target(WriteTarget[None]):
    entity = "test_entity"
    system = "test"
    written_event = "written"
    removed_event = "removed"

    def __init__(self, single: bool = False) -> None:
        self.single = single

    def create(self, client: None, key: str, state: str) -> Found:
        raise NotImplementedError

    def update(self, client: None, found: Found, state: str) -> Found:
        raise NotImplementedError

    def delete(self, client: None, found: Found) -> None:
        raise NotImplementedError


def _store(path: Path) -> LineageStore:
    return LineageStoreResource(url=f"sqlite:///{path}").store()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cases=slots())
def test_plan_equals_decide_for_every_slot(
    cases: list[Slot], tmp_path_factory: pytest.TempPathFactory
) -> None:
    store = _store(tmp_path_factory.mktemp("plan") / "lineage.db")
    target = _Target()
    records = pl.DataFrame(
        [
            (k, state_hash(s), canonical_json({"state": json.loads(s), "handle": h}))
            for k, _, _, last in cases
            if last
            for s, h in [last]
        ],
        schema={"record_key": pl.String, "content_hash": pl.String, "payload": pl.String},
        orient="row",
    )
    with store.engine.begin() as conn:
        store.history.apply_snapshot(conn, target.entity, records, observed_at=T0, complete=False)
    desired = pl.DataFrame(
        [(k, d) for k, d, _, _ in cases], schema={"key": pl.String, "state": pl.String}, orient="row"
    )
    found = found_frame([f for _, _, fs, _ in cases for f in fs])
    plan = plan_writes(target, store, desired, found, [k for k, *_ in cases])
    stored = {
        r["record_key"]: r
        for r in store.history.open_records(target.entity, [k for k, *_ in cases]).iter_rows(named=True)
    }
    for key, want, there, _ in cases:
        row = stored.get(key)
        last = Last(row["content_hash"], row["handle"], row["valid_from"]) if row else None
        expected = decide(key, want, there, last, single=False, removal_reason="no_longer_wanted")
        assert plan.decisions.get(key, Decision()) == expected, key


# ---- execute and record, with a target that fails on demand ----


class FlakyTarget(WriteTarget[None]):
    """An in-memory system: creates can be lost on the way back (ambiguous), items can fail for good."""

    entity = "flaky"
    system = "test"
    written_event = "written"
    removed_event = "removed"

    def __init__(self) -> None:
        self.objects: dict[str, Found] = {}
        self.next_id = 0
        self.lose_reply: set[str] = set()
        self.broken: set[str] = set()
        self.session_fails: str | None = None  # "open" or "close": the lock cannot be taken or released

    @contextmanager
    def session(self, client: None, handles: Sequence[str]) -> Iterator[set[str]]:
        if self.session_fails == "open":
            raise ApiError("PUT /assets/state", 6, "HTTP 503")
        yield set(handles)
        if self.session_fails == "close":
            raise ApiError("PUT /assets/state", 6, "HTTP 503")

    def create(self, client: None, key: str, state: str) -> Found:
        if key in self.broken:
            raise ApiError("POST /things", 1, "HTTP 422: rejected")
        self.next_id += 1
        made = Found(key, str(self.next_id), state)
        self.objects[made.handle] = made
        if key in self.lose_reply:
            self.lose_reply.discard(key)
            raise AmbiguousWrite("POST /things", 1, "unreadable response body (cut short)")
        return made

    def update(self, client: None, found: Found, state: str) -> Found:
        raise NotImplementedError

    def delete(self, client: None, found: Found) -> None:
        self.objects.pop(found.handle, None)

    def lookup(self, client: None, key: str) -> list[Found]:
        return [f for f in self.objects.values() if f.key == key]

    def found(self) -> pl.DataFrame:
        return found_frame(list(self.objects.values()))


def run(target: FlakyTarget, store: LineageStore, wanted: dict[str, str | None], run_id: str) -> object:
    desired = pl.DataFrame(list(wanted.items()), schema={"key": pl.String, "state": pl.String}, orient="row")
    return sync(
        target,
        None,
        store,
        desired=desired,
        found=target.found(),
        scope=list(wanted),
        run_id=run_id,
        context=lambda keys: {k: {"role": "r"} for k in keys},
    )


def test_a_lost_create_reply_is_looked_up_not_repeated(tmp_path: Path) -> None:
    store, target = _store(tmp_path / "l.db"), FlakyTarget()
    target.lose_reply = {"a", "b"}
    result = run(target, store, {"a": A, "b": B, "c": A}, "run-1")
    assert sorted(f.key for f in target.objects.values()) == ["a", "b", "c"]  # one each, none twice
    assert not result.failed  # type: ignore[attr-defined]
    assert store.history.open_records("flaky", ["a", "b", "c"]).height == 3


def test_a_failing_item_stays_pending_counts_runs_and_is_written_once_it_can_be(tmp_path: Path) -> None:
    store, target = _store(tmp_path / "f.db"), FlakyTarget()
    target.broken = {"b"}
    for n in range(1, 4):
        result = run(target, store, {"a": A, "b": B}, f"run-{n}")
        assert [o.action.key for o in result.failed] == ["b"]  # type: ignore[attr-defined]
        pending = store.bookkeeping.failures("flaky")
        assert pending["record_key"].to_list() == ["b"] and pending["consecutive_runs"].to_list() == [n]
    run(target, store, {"a": A, "b": B}, "run-3")  # the same run again does not count twice
    assert store.bookkeeping.failures("flaky")["consecutive_runs"].to_list() == [3]
    target.broken = set()
    result = run(target, store, {"a": A, "b": B}, "run-4")
    assert not result.failed and store.bookkeeping.failures("flaky").height == 0  # type: ignore[attr-defined]
    assert sorted(f.key for f in target.objects.values()) == ["a", "b"]
    quiet = run(target, store, {"a": A, "b": B}, "run-5")
    assert quiet.outcomes == [] and quiet.events == 0  # type: ignore[attr-defined]


def test_unwanted_slots_are_removed_with_their_reason(tmp_path: Path) -> None:
    store, target = _store(tmp_path / "r.db"), FlakyTarget()
    run(target, store, {"a": A, "b": B}, "run-1")
    result = sync(
        target,
        None,
        store,
        desired=pl.DataFrame({"key": ["a"], "state": [A]}),
        found=target.found(),
        scope=["a", "b"],
        run_id="run-2",
        removal_reasons={"b": "version_rejected"},
        context=lambda keys: {k: {} for k in keys},
    )
    assert [f.key for f in target.objects.values()] == ["a"]
    assert store.history.open_records("flaky", ["b"]).height == 0
    with store.engine.connect() as conn:
        removed = (
            conn.exec_driver_sql("SELECT after_json FROM audit_ledger WHERE event_type = 'removed'")
            .scalars()
            .all()
        )
    assert [json.loads(r)["reason"] for r in removed] == ["version_rejected"] and result.events == 1


def keys_of(rows: Sequence[Found]) -> list[str]:
    return sorted(f.key for f in rows)


def test_a_session_that_cannot_open_fails_its_items_and_one_that_cannot_close_keeps_them(
    tmp_path: Path,
) -> None:
    store, target = _store(tmp_path / "s.db"), FlakyTarget()
    target.session_fails = "open"
    result = run(target, store, {"a": A, "b": B}, "run-1")
    assert sorted(o.action.key for o in result.failed) == ["a", "b"]  # type: ignore[attr-defined]
    assert all("could not open the write session" in str(o.error) for o in result.failed)  # type: ignore[attr-defined]
    assert target.objects == {} and store.bookkeeping.failures("flaky").height == 2
    target.session_fails = "close"
    result = run(target, store, {"a": A, "b": B}, "run-2")
    assert not result.failed and store.bookkeeping.failures("flaky").height == 0  # type: ignore[attr-defined]
    assert sorted(f.key for f in target.objects.values()) == ["a", "b"]
    assert store.history.open_records("flaky", ["a", "b"]).height == 2
