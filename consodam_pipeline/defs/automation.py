"""The project's own automation sensor: Dagster creates its default one STOPPED, this one runs."""

import dagster as dg

consodam_automation = dg.AutomationConditionSensorDefinition(
    "consodam_automation",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
    description="Declarative Automation for every consodam asset (eager downstream of the ingest sensors).",
)
