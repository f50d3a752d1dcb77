"""consonance_stage_advances (F2) for a slice of periods: a title at a milestone moves to the milestone's next
stage when, and only when, every requirement the milestone needs is met; one stage at a time (each gate
checked), never the same milestone twice (a title a person moved back is left there), never moved back by
consodam. The stage events (advanced with the versions that met it, held with what is missing, a package
incomplete after an advance) go into the ledger beside the writes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from consodam_pipeline.clients.consonance import ConsonanceClient
from consodam_pipeline.domain.packages import Rules, ready_to_advance, unmet
from consodam_pipeline.domain.timestamps import utcnow
from consodam_pipeline.store.ledger import AuditEvent
from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.store.tables import PARTITION_COLUMN
from consodam_pipeline.sync.engine import sync
from consodam_pipeline.sync.record import WriteResult, frame_context, merged
from consodam_pipeline.sync.target import found_frame
from consodam_pipeline.sync.workflow_targets import StageTarget, stage_state

STAGES = StageTarget(written_event="stage_written")
Requirements = dict[int, dict[str, dict[str, Any]]]  # product id → requirement → its package row


@dataclass
class StageRun:
    report: pl.DataFrame  # each edition at a milestone: its stage before and after this run
    result: WriteResult
    advanced: int
    held: int
    moved_back: int


@dataclass
class _Slice:
    editions: pl.DataFrame  # the editions at a milestone, one row each
    rows: Requirements
    stage: dict[int, str | None]  # product id → its stage, as this run moves it

    @property
    def statuses(self) -> dict[int, dict[str, str]]:
        return {pid: {req: row["status"] for req, row in reqs.items()} for pid, reqs in self.rows.items()}

    @property
    def families(self) -> dict[int, str]:
        return dict(self.editions.select("product_id", "format_family").iter_rows())


def advance_stages(
    client: ConsonanceClient,
    store: LineageStore,
    packages: pl.DataFrame,
    rules: Rules,
    run_id: str,
    log: Any,
    periods: Sequence[str] = (),
) -> StageRun:
    """Every gate the periods' titles meet, passed one stage per pass through the write engine, with the
    periods' stages locked (a run over the same periods reads the stages after this one wrote them)."""
    with store.locks.holding([f"{STAGES.entity}:{p}" for p in periods], say=log.info):
        return _advance_stages(client, store, packages, rules, run_id, log)


def _advance_stages(
    client: ConsonanceClient, store: LineageStore, packages: pl.DataFrame, rules: Rules, run_id: str, log: Any
) -> StageRun:
    editions = packages.filter(pl.col("milestone").is_not_null()).unique("product_id", keep="first")
    rows: Requirements = {}
    for row in packages.iter_rows(named=True):
        rows.setdefault(row["product_id"], {})[row["requirement"]] = row
    live = {p.id: p.project_stage_name for p in client.products_with_resources(editions["isbn13"].to_list())}
    work = _Slice(editions, rows, dict(live))
    moved_back = moved_back_by_hand(store, work.stage, rules)
    results, advanced = [], []
    for _ in rules.milestones:  # one stage per pass, each gate checked: never skips a stage
        ready = ready_to_advance(rules, work.stage, work.families, work.statuses, moved_back)
        if not ready:
            break
        result = _advance(client, store, ready, work, run_id, log)
        results.append(result)
        for outcome in (o for o in result.outcomes if o.ok and o.result is not None):
            pid = int(outcome.action.key)
            advanced.append((pid, work.stage[pid], ready[pid]))
            work.stage[pid] = ready[pid]
    events = stage_events(store, work, rules, run_id, moved_back, advanced)
    with store.engine.begin() as conn:
        store.ledger.record(conn, events)
    held = sum(1 for e in events if e.event_type == "stage_held")
    report = editions.select(
        "product_id", "isbn13", "work_id", "format_family", PARTITION_COLUMN
    ).with_columns(_stage_column(live, "stage_before"), _stage_column(work.stage, "stage_after"))
    return StageRun(report, merged(results), len(advanced), held, len(moved_back))


def _stage_column(stages: Mapping[int, str | None], name: str) -> pl.Expr:
    return pl.col("product_id").replace_strict(dict(stages), default=None, return_dtype=pl.String).alias(name)


def moved_back_by_hand(store: LineageStore, stage: Mapping[int, str | None], rules: Rules) -> set[int]:
    """Titles that now sit at an earlier stage than the one consodam last moved them to: a person moved
    them back, and consodam does not advance them through that milestone again."""
    recorded = store.history.open_payload_map(STAGES.entity, [str(p) for p in stage])
    back = set()
    for key, payload in recorded.items():
        ours = rules.stage_index(json.loads(payload)["state"]["stage"])
        now = rules.stage_index(stage.get(int(key)))
        if ours is not None and now is not None and now < ours:
            back.add(int(key))
    return back


def _advance(
    client: ConsonanceClient,
    store: LineageStore,
    ready: dict[int, str],
    work: _Slice,
    run_id: str,
    log: Any,
) -> WriteResult:
    keys = [str(p) for p in ready]
    desired = pl.DataFrame({"key": keys, "state": [stage_state(ready[p]) for p in ready]})
    found = found_frame([STAGES.found(p, work.stage[p]) for p in ready])
    slots = work.editions.select(
        pl.col("product_id").cast(pl.String).alias("key"), "isbn13", "work_id", PARTITION_COLUMN
    )
    return sync(
        STAGES,
        client,
        store,
        desired=desired,
        found=found,
        scope=keys,
        run_id=run_id,
        context=frame_context(slots),
        log=log,
    )


def stage_events(
    store: LineageStore,
    work: _Slice,
    rules: Rules,
    run_id: str,
    moved_back: set[int],
    advanced: list[tuple[int, str | None, str]],
) -> list[AuditEvent]:
    """stage_advanced with the versions that met the milestone; stage_held (once per missing set) for a
    title at a milestone it does not meet; a flag for a title consodam moved past a milestone whose package
    has since become incomplete (it is not moved back)."""
    by_id = {r["product_id"]: r for r in work.editions.iter_rows(named=True)}
    event = _edition_event(by_id, run_id)
    events = []
    for pid, before, after in advanced:
        milestone = rules.milestone_at(before)
        assert milestone is not None
        met = {
            r.id: {k: work.rows[pid][r.id][k] for k in ("asset_id", "version", "approved_by", "approved_at")}
            for r in rules.needed(by_id[pid]["format_family"], milestone)
        }
        what = {"from": before, "to": after, "milestone": milestone.name, "met_by": met}
        events.append(event("stage_advanced", pid, f"{pid}|{milestone.name}|{after}", what))
    statuses = work.statuses
    for pid, row in by_id.items():
        stage = work.stage.get(pid)
        missing = unmet(rules, row["format_family"], stage, statuses.get(pid, {}))
        if missing or pid in moved_back:
            milestone_name = getattr(rules.milestone_at(stage), "name", None)
            why = {
                "milestone": milestone_name,
                "stage": stage,
                "missing": missing,
                "moved_back_by_hand": pid in moved_back,
            }
            events.append(event("stage_held", pid, f"{pid}|{stage}|{'|'.join(missing)}", why))
    for pid, flagged in passed_incomplete(store, work, rules).items():
        events.append(
            event("package_incomplete_after_advance", pid, f"{pid}|{flagged}", {"incomplete": flagged})
        )
    return events


def _edition_event(by_id: Mapping[int, Mapping[str, Any]], run_id: str) -> Callable[..., AuditEvent]:
    """An event about one edition, decided by consodam: it names the edition and its work."""

    def event(kind: str, pid: int, identity: str, after: dict[str, Any]) -> AuditEvent:
        row = by_id[pid]
        return AuditEvent(
            event_type=kind,
            occurred_at=utcnow(),
            isbn13=row["isbn13"],
            work_id=str(row["work_id"]),
            actor="consodam",
            run_id=run_id,
            identity=identity,
            after=after,
        )

    return event


def passed_incomplete(store: LineageStore, work: _Slice, rules: Rules) -> dict[int, str]:
    """Titles consodam moved past a milestone whose needs are no longer all met (`milestone: missing…`)."""
    recorded = store.history.open_payload_map(STAGES.entity, [str(p) for p in work.stage])
    statuses, families, flagged = work.statuses, work.families, {}
    for pid in (int(k) for k in recorded):
        position = rules.stage_index(work.stage.get(pid))
        for milestone in rules.milestones:
            if position is None or position <= (rules.stage_index(milestone.stage) or 0):
                continue
            missing = unmet(rules, families[pid], milestone.stage, statuses.get(pid, {}))
            if missing:
                flagged[pid] = f"{milestone.name}: {', '.join(missing)}"
    return flagged
