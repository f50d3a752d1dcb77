"""dam_review_tasks (F2 write): the review tasks and requests a title at a milestone needs, in the DAM."""

import dagster as dg
import polars as pl

from consodam_pipeline.clients.opentext_dam import OpenTextDamResource
from consodam_pipeline.derived.review_tasks import task_target
from consodam_pipeline.derived.rules import rules_in_force
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.sync.write_asset import materialized, run_target, write_asset


@write_asset(
    "dam_review_tasks",
    group="workflow",
    writes_to="dam",
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
    store = lineage.store()
    target, desired = task_target(
        title_asset_packages, consonance_stage_advances, dam_asset_inventory, rules_in_force()
    )
    with dam.client() as client:
        result, slots = run_target(context, target, client, store, desired)
    figures = {"decisions_recorded": len(result.plan.settled), "open_wanted": desired.height}
    return materialized(context, "DAM review tasks", target, result, store, slots, extra=figures)
