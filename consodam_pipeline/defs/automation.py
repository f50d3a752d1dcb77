"""The edition sensor: a change the ingest marked, or a write left pending, requests one run of the whole
edition job per range of neighbouring periods (sync/edition_requests.py says why not Declarative
Automation's waves)."""

import dagster as dg

from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.sync.edition_requests import EDITIONS_JOB, EditionCursor, evaluate
from consodam_pipeline.sync.probe import EDITION_SENSOR_INTERVAL_S


@dg.sensor(
    job_name=EDITIONS_JOB,
    minimum_interval_seconds=EDITION_SENSOR_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="One run of consodam_editions per range of neighbouring periods that a change touched (the "
    "ingest's period markers) or that holds writes left pending by a fault (asked for again after a "
    "doubling back-off).",
)
def edition_sync_sensor(
    context: dg.SensorEvaluationContext, lineage: LineageStoreResource
) -> dg.SensorResult:
    pending = lineage.store().bookkeeping.pending_periods()
    runs, cursor, said = evaluate(context.instance, EditionCursor.parse(context.cursor), pending)
    if not runs:
        return dg.SensorResult(skip_reason=said, cursor=cursor.dump())
    context.log.info(f"{said}: {len(runs)} run(s)")
    return dg.SensorResult(run_requests=runs, cursor=cursor.dump())
