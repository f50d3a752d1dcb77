"""The ingest sensors: each probes its source cheaply and requests its ingest when the recent-changes window
holds a change the last tick had not seen (consodam's own writes left out; nothing while a run for it is
queued or in progress)."""

import dagster as dg

from consodam_pipeline.clients.consonance import ConsonanceResource
from consodam_pipeline.clients.opentext_dam import OpenTextDamResource
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.sync.probe import (
    INVENTORY,
    TITLES,
    USAGE,
    ProbeCursor,
    consonance_changes,
    dam_changes,
    decide,
    sensor_interval,
    usage_changes,
)


@dg.sensor(
    target=dg.AssetSelection.assets(TITLES),
    minimum_interval_seconds=sensor_interval(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests title_metadata_snapshot when Consonance's recent-changes window changes "
    "(consodam's own writes left out; nothing while a run for it is queued or in progress).",
)
def consonance_change_sensor(
    context: dg.SensorEvaluationContext, consonance: ConsonanceResource, lineage: LineageStoreResource
) -> dg.SensorResult:
    changes = consonance_changes(consonance, lineage.store())
    return decide(context, asset_key=TITLES, changes=changes, cursor=ProbeCursor.parse(context.cursor))


@dg.sensor(
    target=dg.AssetSelection.assets(INVENTORY),
    minimum_interval_seconds=sensor_interval(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests dam_asset_inventory when DAM versions were modified since the high-water mark "
    "(consodam's own writes left out; nothing while a run for it is queued or in progress).",
)
def dam_change_sensor(
    context: dg.SensorEvaluationContext, dam: OpenTextDamResource, lineage: LineageStoreResource
) -> dg.SensorResult:
    cursor = ProbeCursor.parse(context.cursor)
    changes, newest = dam_changes(dam, lineage.store(), cursor)
    return decide(
        context, asset_key=INVENTORY, changes=changes, cursor=cursor, high_water=newest, needs=[TITLES]
    )


@dg.sensor(
    target=dg.AssetSelection.assets(USAGE),
    minimum_interval_seconds=sensor_interval(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests dam_usage_log when the DAM's usage log has entries past what the lineage store holds.",
)
def dam_usage_sensor(
    context: dg.SensorEvaluationContext, dam: OpenTextDamResource, lineage: LineageStoreResource
) -> dg.SensorResult:
    changes = usage_changes(dam, lineage.store())
    cursor = ProbeCursor.parse(context.cursor)
    return decide(context, asset_key=USAGE, changes=changes, cursor=cursor, needs=[INVENTORY])
