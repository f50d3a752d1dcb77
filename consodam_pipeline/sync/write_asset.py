"""A write asset is a declaration: `@write_asset(...)` gives it the period partitions, the pool and kind of the
system it writes to, its automation and the `writes_landed` check; its body builds a target for the run
(sync/*_targets, what and how) from the plan function's desired state and hands both to `write`, which
observes the system, plans, executes, records, and reports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import dagster as dg
import polars as pl

from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.store.tables import PARTITION_COLUMN
from consodam_pipeline.sync.engine import sync
from consodam_pipeline.sync.partitions import by_period, period_asset
from consodam_pipeline.sync.record import WriteResult, frame_context
from consodam_pipeline.sync.report import add_counts, write_metadata, write_report, writes_check_spec
from consodam_pipeline.sync.target import Client, WriteTarget

# The system a write asset writes to: its kind in the UI and the pool that keeps its API's rate limits.
SYSTEMS = {"dam": ("opentext", "dam_api"), "consonance": ("consonance", "consonance_api")}


def write_asset(
    name: str,
    *,
    group: str,
    writes_to: str,
    description: str,
    **spec: Any,
) -> Any:
    """The decorator of a write asset over the publication periods (its upstream assets are its inputs)."""
    kind, pool = SYSTEMS[writes_to]
    return period_asset(
        name=name,
        **by_period(),
        group_name=group,
        kinds={kind},
        pool=pool,
        check_specs=[writes_check_spec(name)],
        description=description,
        **spec,
    )


def _with_period(slots: pl.DataFrame, periods: Sequence[str]) -> pl.DataFrame:
    """Slots with their period: a one-period run answers for every slot it considered."""
    if len(periods) != 1:
        return slots
    if PARTITION_COLUMN not in slots.columns:
        return slots.with_columns(pl.lit(periods[0]).alias(PARTITION_COLUMN))
    return slots.with_columns(pl.col(PARTITION_COLUMN).fill_null(periods[0]))


def run_target(
    context: dg.AssetExecutionContext,
    target: WriteTarget[Client],
    client: Client,
    store: LineageStore,
    desired: pl.DataFrame,
) -> tuple[WriteResult, pl.DataFrame]:
    """One engine pass for the target: what the system shows, every slot the run answers for, why the
    unwanted ones go; the result, and the slots considered (the report's rows). The target's periods are
    locked throughout: a run over the same periods plans only once this one has recorded."""
    locks = [f"{target.entity}:{period}" for period in context.partition_keys]
    with store.locks.holding(locks, say=context.log.info):
        found = target.observe(client, store)
        scope = target.scope(found, store)
        wanted = set(desired["key"].to_list())
        keys = sorted(wanted | set(scope))
        reasons = target.removal_reasons([k for k in keys if k not in wanted], found, store)
        slots = _with_period(target.slots(keys, desired), context.partition_keys)
        result = sync(
            target,
            client,
            store,
            desired=desired.select("key", "state"),
            found=found,
            scope=scope,
            run_id=context.run.run_id,
            context=frame_context(slots),
            removal_reasons=reasons,
            log=context.log,
        )
    return result, slots


def write(
    context: dg.AssetExecutionContext,
    target: WriteTarget[Client],
    client: Client,
    store: LineageStore,
    desired: pl.DataFrame,
    *,
    title: str,
) -> dg.MaterializeResult:
    """Plan, execute, verify and record the target's writes; what the materialization shows."""
    result, slots = run_target(context, target, client, store, desired)
    return materialized(context, title, target, result, store, slots)


def materialized(
    context: dg.AssetExecutionContext,
    title: str,
    target: WriteTarget[Any],
    result: WriteResult,
    store: LineageStore,
    slots: pl.DataFrame | None = None,
    *,
    report: pl.DataFrame | None = None,
    extra: Mapping[str, Any] | None = None,
    earlier: Mapping[str, WriteResult] | None = None,
) -> dg.MaterializeResult:
    """The report table (a row per slot considered, with what was done there; or the asset's own
    `report`), the metadata a person reads, and the writes_landed check — which fails too for items that
    failed in the asset's `earlier` passes (by name)."""
    metadata, check = write_metadata(title, target, result, store)
    # Checks are kept per asset, not per partition: each result says which periods it covered.
    keys = list(context.partition_keys)
    periods = keys[0] if len(keys) == 1 else f"{keys[0]} … {keys[-1]} ({len(keys)})"
    check = dg.AssetCheckResult(
        check_name=check.check_name,
        passed=check.passed,
        severity=check.severity,
        metadata={**(check.metadata or {}), "periods": periods},
    )
    for name, passed in (earlier or {}).items():
        if passed.failed:
            counts = add_counts(dict(check.metadata or {}), {f"{name}_failed": len(passed.failed)})
            check = dg.AssetCheckResult(
                check_name=check.check_name, passed=False, severity=check.severity, metadata=counts
            )
    if report is None:
        assert slots is not None
        report = write_report(result, slots).with_columns(
            pl.col(PARTITION_COLUMN).fill_null(context.partition_keys[0])
        )
    return dg.MaterializeResult(value=report, metadata={**metadata, **(extra or {})}, check_results=[check])
