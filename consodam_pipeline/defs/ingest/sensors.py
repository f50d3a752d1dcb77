"""The ingest sensors: each looks every few seconds whether its probe is due, probes its source cheaply when it
is, and requests its ingest when the recent-changes window holds a change the last probe had not seen
(consodam's own writes left out; nothing while a run for it is queued or in progress, or an edition run
writes)."""

import dagster as dg

from consodam_pipeline.clients.consonance import ConsonanceResource
from consodam_pipeline.clients.opentext_dam import OpenTextDamResource
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.sync.probe import (
    INVENTORY,
    PROBE_TICK_S,
    TITLES,
    USAGE,
    ProbeCursor,
    consonance_changes,
    dam_changes,
    dam_probe_interval,
    decide,
    not_now,
    sensor_interval,
    usage_changes,
    usage_probe_interval,
)


@dg.sensor(
    target=dg.AssetSelection.assets(TITLES),
    minimum_interval_seconds=PROBE_TICK_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests title_metadata_snapshot when Consonance's recent-changes window changes (probed "
    "every CONSODAM_SENSOR_INTERVAL_S; consodam's own writes left out; nothing while a run for it is queued "
    "or in progress).",
)
def consonance_change_sensor(
    context: dg.SensorEvaluationContext, consonance: ConsonanceResource, lineage: LineageStoreResource
) -> dg.SensorResult:
    cursor = ProbeCursor.parse(context.cursor)
    if skip := not_now(context, asset_key=TITLES, cursor=cursor, interval=sensor_interval()):
        return skip
    changes = consonance_changes(consonance, lineage.store())
    return decide(context, asset_key=TITLES, changes=changes, cursor=cursor)


@dg.sensor(
    target=dg.AssetSelection.assets(INVENTORY),
    minimum_interval_seconds=PROBE_TICK_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests dam_asset_inventory when DAM versions were modified since the high-water mark "
    "(probed every half CONSODAM_SENSOR_INTERVAL_S; consodam's own writes left out; nothing while a run for it "
    "is queued or in progress).",
)
def dam_change_sensor(
    context: dg.SensorEvaluationContext, dam: OpenTextDamResource, lineage: LineageStoreResource
) -> dg.SensorResult:
    cursor = ProbeCursor.parse(context.cursor)
    skip = not_now(context, asset_key=INVENTORY, cursor=cursor, interval=dam_probe_interval(), needs=[TITLES])
    if skip:
        return skip
    changes, newest = dam_changes(dam, lineage.store(), cursor)
    return decide(context, asset_key=INVENTORY, changes=changes, cursor=cursor, high_water=newest)


@dg.sensor(
    target=dg.AssetSelection.assets(USAGE),
    minimum_interval_seconds=PROBE_TICK_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests dam_usage_log when the DAM's usage log has entries past what the lineage store holds "
    "(probed every twice CONSODAM_SENSOR_INTERVAL_S).",
)
def dam_usage_sensor(
    context: dg.SensorEvaluationContext, dam: OpenTextDamResource, lineage: LineageStoreResource
) -> dg.SensorResult:
    cursor = ProbeCursor.parse(context.cursor)
    skip = not_now(
        context, asset_key=USAGE, cursor=cursor, interval=usage_probe_interval(), needs=[INVENTORY]
    )
    if skip:
        return skip
    changes = usage_changes(dam, lineage.store())
    return decide(context, asset_key=USAGE, changes=changes, cursor=cursor)
