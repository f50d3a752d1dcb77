"""consonance_production_files (F5 write): each met requirement referenced as a production file in Consonance."""

import dagster as dg
import polars as pl

from consodam_pipeline.clients.consonance import ConsonanceResource
from consodam_pipeline.clients.opentext_dam import OpenTextDamResource
from consodam_pipeline.derived.production_files import production_file_writes
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.sync.write_asset import write, write_asset


@write_asset(
    "consonance_production_files",
    group="workflow",
    writes_to="consonance",
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
    target, desired = production_file_writes(title_asset_packages, dam.url)
    with consonance.client() as client:
        return write(context, target, client, lineage.store(), desired, title="Consonance production files")
