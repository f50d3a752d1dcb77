"""The F2 and F5 writes, by period, each through the write engine:

- consonance_stage_advances: a title at a milestone moves to the milestone's next stage when, and only when,
  every requirement the milestone needs is met; one stage at a time (each gate checked), never the same
  milestone twice (a title a person moved back is left there), never moved back by consodam;
- dam_review_tasks: for a title at a milestone, one open review task per required version awaiting a
  decision, and one request per required asset that is missing, rejected or fails a technical
  requirement; tasks made moot are cancelled with the reason; decisions reviewers make are recorded;
- consonance_production_files: each met requirement referenced as a production file on the edition.
"""

import json
from typing import Any

import dagster as dg
import polars as pl

from consodam_pipeline.clients.consonance import ConsonanceClient, ConsonanceResource
from consodam_pipeline.clients.opentext_dam import OpenTextDamResource, ReviewTask
from consodam_pipeline.defs.editions import by_period
from consodam_pipeline.defs.workflow.assets import rules_in_force
from consodam_pipeline.domain.packages import Rules, ready_to_advance, unmet
from consodam_pipeline.store.lineage import AuditEvent, LineageStore, utcnow
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.store.tables import PARTITION_COLUMN
from consodam_pipeline.sync.consonance_resources import ProductionFileTarget, reference_state
from consodam_pipeline.sync.engine import WriteResult, found_frame, frame_context, merged, sync
from consodam_pipeline.sync.report import write_metadata, write_report, writes_check_spec
from consodam_pipeline.sync.workflow_targets import (
    ReviewTaskTarget,
    StageTarget,
    stage_state,
    task_found,
    task_key,
    task_state,
)

STAGES = StageTarget(written_event="stage_written")
FILES_ENTITY = "consonance_production_file"


def requirement_status(packages: pl.DataFrame) -> dict[int, dict[str, dict[str, Any]]]:
    """product id → requirement → its package row."""
    found: dict[int, dict[str, dict[str, Any]]] = {}
    for row in packages.iter_rows(named=True):
        found.setdefault(row["product_id"], {})[row["requirement"]] = row
    return found


def event(kind: str, row: dict[str, Any], run_id: str, identity: str, **fields: Any) -> AuditEvent:
    return AuditEvent(
        event_type=kind,
        occurred_at=utcnow(),
        isbn13=row["isbn13"],
        work_id=str(row["work_id"]),
        actor="consodam",
        run_id=run_id,
        identity=identity,
        **fields,
    )


def statuses(rows: dict[int, dict[str, dict[str, Any]]]) -> dict[int, dict[str, str]]:
    return {pid: {req: row["status"] for req, row in reqs.items()} for pid, reqs in rows.items()}


# ---- stage advances ----


@dg.asset(
    **by_period("title_asset_packages"),
    group_name="workflow",
    kinds={"consonance"},
    pool="consonance_api",
    check_specs=[writes_check_spec("consonance_stage_advances")],
    description="Moves a title at a milestone to the next project stage in Consonance when, and only when, every "
    "requirement the milestone needs is approved; one stage at a time, each gate checked; a held title gets a "
    "stage_held event naming what it lacks; each advance a stage_advanced event with the versions that met it.",
)
def consonance_stage_advances(  # type: ignore[no-untyped-def]  # an annotation would be read as the output's type
    context: dg.AssetExecutionContext,
    title_asset_packages: pl.DataFrame,
    consonance: ConsonanceResource,
    lineage: LineageStoreResource,
):
    rules, store, run_id = rules_in_force(), lineage.store(), context.run.run_id
    editions = title_asset_packages.filter(pl.col("milestone").is_not_null()).unique(
        "product_id", keep="first"
    )
    rows = requirement_status(title_asset_packages)
    families = dict(editions.select("product_id", "format_family").iter_rows())
    with consonance.client() as client:
        live = {
            p.id: p.project_stage_name for p in client.products_with_resources(editions["isbn13"].to_list())
        }
        stage = dict(live)
        moved_back = moved_back_by_hand(store, stage, rules)
        results, advanced = [], []
        for _ in rules.milestones:  # one stage per pass, each gate checked: never skips a stage
            ready = ready_to_advance(rules, stage, families, statuses(rows), moved_back)
            if not ready:
                break
            result = advance(client, store, ready, stage, editions, run_id, context)
            results.append(result)
            for outcome in (o for o in result.outcomes if o.ok and o.result is not None):
                pid = int(outcome.action.key)
                advanced.append((pid, stage[pid], ready[pid]))
                stage[pid] = ready[pid]
    held = record_stage_events(store, editions, stage, rows, rules, run_id, moved_back, advanced)
    report = editions.select(
        "product_id", "isbn13", "work_id", "format_family", PARTITION_COLUMN
    ).with_columns(
        pl.col("product_id").replace_strict(live, default=None, return_dtype=pl.String).alias("stage_before"),
        pl.col("product_id").replace_strict(stage, default=None, return_dtype=pl.String).alias("stage_after"),
    )
    metadata, check = write_metadata("Consonance stage advances", STAGES, merged(results), store)
    metadata |= {"advanced": len(advanced), "held": held, "moved_back_by_hand": len(moved_back)}
    return dg.MaterializeResult(value=report, metadata=metadata, check_results=[check])


def moved_back_by_hand(store: LineageStore, stage: dict[int, str | None], rules: Rules) -> set[int]:
    """Titles that now sit at an earlier stage than the one consodam last moved them to: a person moved
    them back, and consodam does not advance them through that milestone again."""
    recorded = store.open_payload_map(STAGES.entity, [str(p) for p in stage])
    back = set()
    for key, payload in recorded.items():
        ours = rules.stage_index(json.loads(payload)["state"]["stage"])
        now = rules.stage_index(stage.get(int(key)))
        if ours is not None and now is not None and now < ours:
            back.add(int(key))
    return back


def advance(
    client: ConsonanceClient,
    store: LineageStore,
    ready: dict[int, str],
    stage: dict[int, str | None],
    editions: pl.DataFrame,
    run_id: str,
    context: dg.AssetExecutionContext,
) -> WriteResult:
    keys = [str(p) for p in ready]
    desired = pl.DataFrame({"key": keys, "state": [stage_state(ready[p]) for p in ready]})
    found = found_frame([STAGES.found(p, stage[p]) for p in ready])
    slots = editions.select(pl.col("product_id").cast(pl.String).alias("key"), "isbn13", "work_id")
    return sync(
        STAGES,
        client,
        store,
        desired=desired,
        found=found,
        scope=keys,
        run_id=run_id,
        context=frame_context(slots),
        log=context.log,
    )


def record_stage_events(
    store: LineageStore,
    editions: pl.DataFrame,
    stage: dict[int, str | None],
    rows: dict[int, dict[str, dict[str, Any]]],
    rules: Rules,
    run_id: str,
    moved_back: set[int],
    advanced: list[tuple[int, str | None, str]],
) -> int:
    """stage_advanced with the versions that met the milestone; stage_held (once per missing set) for a
    title at a milestone it does not meet; a flag for a title consodam moved past a milestone whose package
    has since become incomplete (it is not moved back)."""
    by_id = {r["product_id"]: r for r in editions.iter_rows(named=True)}
    events = []
    for pid, before, after in advanced:
        milestone = rules.milestone_at(before)
        assert milestone is not None
        met = {
            r.id: {k: rows[pid][r.id][k] for k in ("asset_id", "version", "approved_by", "approved_at")}
            for r in rules.needed(by_id[pid]["format_family"], milestone)
        }
        after_state = {"from": before, "to": after, "milestone": milestone.name, "met_by": met}
        events.append(
            event("stage_advanced", by_id[pid], run_id, f"{pid}|{milestone.name}|{after}", after=after_state)
        )
    for pid, row in by_id.items():
        missing = unmet(rules, row["format_family"], stage.get(pid), statuses(rows).get(pid, {}))
        if missing or pid in moved_back:
            why = {
                "milestone": getattr(rules.milestone_at(stage.get(pid)), "name", None),
                "stage": stage.get(pid),
                "missing": missing,
                "moved_back_by_hand": pid in moved_back,
            }
            events.append(
                event("stage_held", row, run_id, f"{pid}|{stage.get(pid)}|{'|'.join(missing)}", after=why)
            )
    for pid, flagged in passed_incomplete(store, stage, statuses(rows), families_of(by_id), rules).items():
        events.append(
            event(
                "package_incomplete_after_advance",
                by_id[pid],
                run_id,
                f"{pid}|{flagged}",
                after={"incomplete": flagged},
            )
        )
    with store.engine.begin() as conn:
        store.append_events(conn, events)
    return sum(1 for e in events if e.event_type == "stage_held")


def families_of(by_id: dict[int, dict[str, Any]]) -> dict[int, str]:
    return {pid: row["format_family"] for pid, row in by_id.items()}


def passed_incomplete(
    store: LineageStore,
    stage: dict[int, str | None],
    status: dict[int, dict[str, str]],
    families: dict[int, str],
    rules: Rules,
) -> dict[int, str]:
    """Titles consodam moved past a milestone whose needs are no longer all met (`milestone: missing…`)."""
    recorded = store.open_payload_map(STAGES.entity, [str(p) for p in stage])
    flagged = {}
    for pid in (int(k) for k in recorded):
        position = rules.stage_index(stage.get(pid))
        for milestone in rules.milestones:
            if position is None or position <= (rules.stage_index(milestone.stage) or 0):
                continue
            missing = unmet(rules, families[pid], milestone.stage, status.get(pid, {}))
            if missing:
                flagged[pid] = f"{milestone.name}: {', '.join(missing)}"
    return flagged


# ---- review tasks ----


@dg.asset(
    **by_period("consonance_stage_advances"),
    group_name="workflow",
    kinds={"opentext"},
    pool="dam_api",
    check_specs=[writes_check_spec("dam_review_tasks")],
    description="For each title at a milestone (its stage after this run's advances), one open DAM review task per "
    "required version awaiting a decision, and one request per required asset that is missing, rejected or fails "
    "a technical requirement; never two per asset and milestone; moot tasks cancelled with the reason; reviewers' "
    "decisions recorded as review_task_completed.",
)
def dam_review_tasks(  # type: ignore[no-untyped-def]  # an annotation would be read as the output's type
    context: dg.AssetExecutionContext,
    title_asset_packages: pl.DataFrame,
    consonance_stage_advances: pl.DataFrame,
    dam_asset_inventory: pl.DataFrame,
    dam: OpenTextDamResource,
    lineage: LineageStoreResource,
):
    rules, store, run_id = rules_in_force(), lineage.store(), context.run.run_id
    stages = dict(consonance_stage_advances.select("product_id", "stage_after").iter_rows())
    wanted = wanted_tasks(title_asset_packages, stages, rules)
    isbns = set(title_asset_packages["isbn13"].to_list())
    assets = set(versions_of(dam_asset_inventory, title_asset_packages)["asset_id"].to_list())
    with dam.client() as client:
        tasks = [
            t
            for t in client.review_tasks()
            if (t.asset_id in assets) or (t.kind == "request" and t.isbn in isbns)
        ]
        open_tasks = [t for t in tasks if t.status == "open"]
        decided = record_decisions(
            store, [t for t in tasks if t.status in ("approved", "rejected")], title_asset_packages, run_id
        )
        found = found_frame([task_found(t) for t in open_tasks])
        scope = sorted({*found["key"].to_list(), *recorded_in_scope(store, assets, isbns)} - decided)
        target = ReviewTaskTarget(
            notes=dict(wanted.select("key", "note").iter_rows()),
            isbns=dict(wanted.select("key", "isbn13").iter_rows()),
            reasons=task_reasons(scope, wanted, title_asset_packages, stages, rules),
        )
        result = sync(
            target,
            client,
            store,
            desired=wanted.select("key", "state"),
            found=found,
            scope=scope,
            run_id=run_id,
            context=frame_context(task_slots(wanted, scope, title_asset_packages)),
            removal_reasons=target.reasons,
            log=context.log,
        )
    metadata, check = write_metadata("DAM review tasks", target, result, store)
    metadata |= {"decisions_recorded": len(decided), "open_wanted": wanted.height}
    report = write_report(result, task_slots(wanted, scope, title_asset_packages))
    return dg.MaterializeResult(
        value=report.with_columns(pl.col(PARTITION_COLUMN).fill_null(context.partition_keys[0])),
        metadata=metadata,
        check_results=[check],
    )


def versions_of(inventory: pl.DataFrame, packages: pl.DataFrame) -> pl.DataFrame:
    """The DAM versions of these editions: tagged with their ISBNs or their works."""
    return inventory.filter(
        pl.col("isbn13").is_in(packages["isbn13"].unique().implode())
        | pl.col("work_id").is_in(packages["work_id"].unique().implode())
    )


def wanted_tasks(packages: pl.DataFrame, stages: dict[int, str | None], rules: Rules) -> pl.DataFrame:
    """key, state, note, isbn13, and what the ledger names, for every task a title at a milestone needs."""
    rows = []
    for row in packages.iter_rows(named=True):
        milestone = rules.milestone_at(stages.get(row["product_id"]))
        needed = milestone is not None and row["requirement"] in {
            r.id for r in rules.needed(row["format_family"], milestone)
        }
        if not needed or row["status"] == "approved":
            continue
        assert milestone is not None
        kind = "review" if row["status"] == "in_review" else "request"
        state = task_state(
            kind, milestone.name, asset_id=row["asset_id"], isbn=row["isbn13"], requirement=row["requirement"]
        )
        if kind == "review":
            key = f"review|{row['asset_id']}|{milestone.name}"
        else:
            key = f"request|{row['isbn13']}|{milestone.name}|{row['requirement']}"
        note = f"{milestone.name} needs {row['requirement_name']}: {row['detail']}"
        rows.append(
            (
                key,
                state,
                note,
                row["isbn13"],
                row["work_id"],
                row["asset_id"] if kind == "review" else None,
                row["version"] if kind == "review" else None,
                row["requirement"],
                row[PARTITION_COLUMN],
            )
        )
    return pl.DataFrame(
        rows,
        orient="row",
        schema={
            "key": pl.String,
            "state": pl.String,
            "note": pl.String,
            "isbn13": pl.String,
            "work_id": pl.Int64,
            "dam_asset_id": pl.String,
            "dam_version": pl.Int64,
            "role": pl.String,
            PARTITION_COLUMN: pl.String,
        },
    ).unique("key", keep="first", maintain_order=True)


def recorded_in_scope(store: LineageStore, assets: set[str], isbns: set[str]) -> list[str]:
    """Tasks consodam recorded as open for this period's versions and editions."""
    keys = store.open_keys(ReviewTaskTarget.entity)
    return [k for k in keys if k.split("|")[1] in (assets if k.startswith("review|") else isbns)]


def record_decisions(
    store: LineageStore, decided: list[ReviewTask], packages: pl.DataFrame, run_id: str
) -> set[str]:
    """review_task_completed for each decision reviewers made on a task consodam opened; its record closed.
    Returns the keys decided (no longer the engine's to keep)."""
    recorded = set(store.open_keys(ReviewTaskTarget.entity))
    mine = [t for t in decided if task_key(t) in recorded]
    by_isbn = {r["isbn13"]: r for r in packages.iter_rows(named=True)}
    by_asset = {r["asset_id"]: r for r in packages.iter_rows(named=True) if r["asset_id"]}
    events = []
    for task in mine:
        row = by_asset.get(task.asset_id) or by_isbn.get(task.isbn) or {}
        events.append(
            AuditEvent(
                event_type="review_task_completed",
                occurred_at=utcnow(),
                isbn13=task.isbn or row.get("isbn13"),
                work_id=str(row.get("work_id")) if row else None,
                dam_asset_id=task.asset_id,
                dam_version=row.get("version") if task.asset_id else None,
                actor=task.completed_by,
                run_id=run_id,
                after={
                    "task_id": task.task_id,
                    "milestone": task.milestone,
                    "decision": task.status,
                    "completed_at": task.completed_at,
                },
                identity=f"{task.task_id}|{task.status}|{task.completed_at}",
            )
        )
    with store.engine.begin() as conn:
        store.append_events(conn, events)
        store.close_records(conn, ReviewTaskTarget.entity, [task_key(t) for t in mine], utcnow())
    return {task_key(t) for t in mine}


def task_reasons(
    scope: list[str],
    wanted: pl.DataFrame,
    packages: pl.DataFrame,
    stages: dict[int, str | None],
    rules: Rules,
) -> dict[str, str]:
    """Why each task in scope that is no longer wanted is moot."""
    wanted_keys = set(wanted["key"].to_list())
    by_asset = {r["asset_id"]: r for r in packages.iter_rows(named=True) if r["asset_id"]}
    by_requirement = {(r["isbn13"], r["requirement"]): r for r in packages.iter_rows(named=True)}
    reasons = {}
    for key in (k for k in scope if k not in wanted_keys):
        kind, subject, milestone, *rest = key.split("|")
        row = (
            by_asset.get(subject)
            if kind == "review"
            else by_requirement.get((subject, rest[0] if rest else ""))
        )
        current = rules.milestone_at(stages.get(row["product_id"])) if row else None
        if row is None:
            reasons[key] = "version_superseded_or_deleted" if kind == "review" else "edition_gone"
        elif current is None or current.name != milestone:
            reasons[key] = "title_left_the_milestone"
        else:
            reasons[key] = f"requirement_{row['status']}"
    return reasons


def task_slots(wanted: pl.DataFrame, scope: list[str], packages: pl.DataFrame) -> pl.DataFrame:
    known = set(wanted["key"].to_list())
    extra = pl.DataFrame({"key": [k for k in scope if k not in known]}, schema={"key": pl.String})
    return pl.concat([wanted.drop("state", "note"), extra], how="diagonal_relaxed")


# ---- production files (F5) ----


@dg.asset(
    **by_period("title_asset_packages"),
    group_name="workflow",
    kinds={"consonance"},
    pool="consonance_api",
    check_specs=[writes_check_spec("consonance_production_files")],
    description="Each met package requirement referenced in the edition's production workflow in Consonance (a "
    "production file per requirement, the approved DAM version's URL); a newer version replaces it (history kept); "
    "one no longer met is removed with the reason.",
)
def consonance_production_files(  # type: ignore[no-untyped-def]  # an annotation would be read as the output's type
    context: dg.AssetExecutionContext,
    title_asset_packages: pl.DataFrame,
    consonance: ConsonanceResource,
    dam: OpenTextDamResource,
    lineage: LineageStoreResource,
):
    store = lineage.store()
    target = ProductionFileTarget(
        entity=FILES_ENTITY,
        written_event="package_referenced",
        removed_event="package_reference_removed",
        dam_url=dam.url,
        isbns=dict(title_asset_packages.select("product_id", "isbn13").unique().iter_rows()),
    )
    met = title_asset_packages.filter(pl.col("status") == "approved")
    desired = met.select(
        pl.format("{}|{}", "product_id", "requirement").alias("key"),
        pl.struct("requirement", "version", "asset_id")
        .map_elements(
            lambda r: reference_state(
                f"{r['requirement']} v{r['version']}", r["requirement"], target.content_url(r["asset_id"])
            ),
            return_dtype=pl.String,
        )
        .alias("state"),
    )
    slots = title_asset_packages.select(
        pl.format("{}|{}", "product_id", "requirement").alias("key"),
        "isbn13",
        "work_id",
        pl.col("asset_id").alias("dam_asset_id"),
        pl.col("version").alias("dam_version"),
        pl.col("requirement").alias("role"),
        "status",
        PARTITION_COLUMN,
    )
    with consonance.client() as client:
        found = target.observe(client, title_asset_packages["product_id"].unique().to_list())
        scope = sorted({*found["key"].to_list(), *slots["key"].to_list()})
        reasons = {
            k: f"requirement_{s}" for k, s in slots.select("key", "status").iter_rows() if s != "approved"
        }
        result = sync(
            target,
            client,
            store,
            desired=desired,
            found=found,
            scope=scope,
            run_id=context.run.run_id,
            context=frame_context(slots),
            removal_reasons=reasons,
            log=context.log,
        )
    metadata, check = write_metadata("Consonance production files", target, result, store)
    return dg.MaterializeResult(value=write_report(result, slots), metadata=metadata, check_results=[check])
