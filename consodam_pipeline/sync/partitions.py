"""How Dagster runs the edition graph: one partition per publication period, a marker per period that
changed (`edition_changes`, recorded by the ingest), and the automation condition every edition-level
asset shares."""

from __future__ import annotations

import warnings
from typing import Any

import dagster as dg

from consodam_pipeline.domain.periods import period_keys

publication_periods = dg.StaticPartitionsDefinition(period_keys())
EDITION_CHANGES = dg.AssetKey("edition_changes")


def change_markers(periods: list[str], source: str) -> list[dg.AssetMaterialization]:
    """A marker for each period a change touched: the edition graph re-materializes exactly these."""
    return [
        dg.AssetMaterialization(asset_key=EDITION_CHANGES, partition=period, metadata={"source": source})
        for period in periods
    ]


def on_updates_of(*keys: dg.AssetKey | str) -> dg.AutomationCondition:
    """Eager, but only for the given upstream keys (not the unpartitioned snapshots it also reads, whose every
    update would otherwise request every partition), and only after their blocking checks passed — so the
    DAM is never written from a rights matrix that failed its checks."""
    selection = dg.AssetSelection.assets(*keys)
    return (
        (
            dg.AutomationCondition.newly_missing()
            | dg.AutomationCondition.any_deps_updated().allow(selection)
        ).since_last_handled()
        & ~dg.AutomationCondition.any_deps_in_progress()
        & ~dg.AutomationCondition.in_progress()
        & dg.AutomationCondition.all_deps_blocking_checks_passed().allow(selection)
    ).with_label(f"on updates of {', '.join(dg.AssetKey.from_coercible(k).to_user_string() for k in keys)}")


def by_period(*upstream: dg.AssetKey | str) -> dict[str, Any]:
    """What every edition-level asset shares: the period partitions, a single run for any backfill, and
    reacting to updates of `upstream` (the period markers for the first layer)."""
    return {
        "partitions_def": publication_periods,
        "backfill_policy": dg.BackfillPolicy.single_run(),
        "automation_condition": on_updates_of(*upstream),
    }


def period_asset(**spec: Any) -> Any:
    """`dg.asset` for an edition-level asset. Single-run backfills are how this graph runs (README, "The
    edition graph"); Dagster flags `backfill_policy` as beta each time an asset is declared with it, which
    would open every command's output with the same warning, so the declaration is made without it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)
        return dg.asset(**spec)


def range_tags(keys: list[str]) -> dict[str, str]:
    """Run tags that select exactly this range of neighbouring periods."""
    if len(keys) == 1:
        return {"dagster/partition": keys[0]}
    return {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
