"""consonance_stage_advances (F2 write): a title at a milestone moves on when every requirement is met."""

import dagster as dg
import polars as pl

from consodam_pipeline.clients.consonance import ConsonanceResource
from consodam_pipeline.derived.rules import rules_in_force
from consodam_pipeline.derived.stages import STAGES, advance_stages
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.sync.write_asset import materialized, write_asset


@write_asset(
    "consonance_stage_advances",
    group="workflow",
    writes_to="consonance",
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
    store = lineage.store()
    with consonance.client() as client:
        run = advance_stages(
            client, store, title_asset_packages, rules_in_force(), context.run.run_id, context.log
        )
    figures = {"advanced": run.advanced, "held": run.held, "moved_back_by_hand": run.moved_back}
    return materialized(
        context, "Consonance stage advances", STAGES, run.result, store, report=run.report, extra=figures
    )
