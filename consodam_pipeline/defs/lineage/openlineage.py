"""OpenLineage: when a run ends, its steps go to the configured OpenLineage backend (Marquez, DataHub, …) as
START and COMPLETE/FAIL run events. Off unless OPENLINEAGE_URL or OPENLINEAGE_CONFIG is set."""

import dagster as dg

from consodam_pipeline.clients.consonance import ConsonanceResource
from consodam_pipeline.clients.opentext_dam import OpenTextDamResource
from consodam_pipeline.openlineage.steps import emit_run
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.store.tables import PolarsParquetIOManager


def lineage_sensor(status: dg.DagsterRunStatus, name: str, sent: str) -> dg.RunStatusSensorDefinition:
    @dg.run_status_sensor(
        run_status=status,
        name=name,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"Sends each {sent}; off unless OPENLINEAGE_URL or OPENLINEAGE_CONFIG is set.",
    )
    def send(
        context: dg.RunStatusSensorContext,
        consonance: ConsonanceResource,
        dam: OpenTextDamResource,
        lineage: LineageStoreResource,
        io_manager: PolarsParquetIOManager,
    ) -> dg.SkipReason | None:
        return emit_run(context, consonance, dam, lineage, io_manager)

    return send


openlineage_on_success = lineage_sensor(
    dg.DagsterRunStatus.SUCCESS,
    "openlineage_on_success",
    "successful run's steps to OpenLineage (START and COMPLETE, datasets, facets)",
)
openlineage_on_failure = lineage_sensor(
    dg.DagsterRunStatus.FAILURE,
    "openlineage_on_failure",
    "failed run's steps to OpenLineage (START and COMPLETE or FAIL, with the error)",
)
