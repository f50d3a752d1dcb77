"""dam_change_sensor: probes DAM versions modified after the last high-water mark (slim listing)."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from consodam_pipeline.clients.opentext_dam import OpenTextDamResource, modified_after
from consodam_pipeline.defs.probe import ProbeCursor, decide, not_our_own
from consodam_pipeline.domain.timestamps import format_ts, parse_ts
from consodam_pipeline.store.resource import LineageStoreResource

INVENTORY = dg.AssetKey("dam_asset_inventory")
LOOKBACK = timedelta(seconds=120)  # DAM timestamps have second granularity; re-read a short window


@dg.sensor(
    target=dg.AssetSelection.assets(INVENTORY),
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests dam_asset_inventory when DAM versions were modified since the high-water mark "
    "(consodam's own writes left out; nothing while a run for it is queued or in progress).",
)
def dam_change_sensor(
    context: dg.SensorEvaluationContext, dam: OpenTextDamResource, lineage: LineageStoreResource
) -> dg.SensorResult:
    cursor = ProbeCursor.parse(context.cursor)
    now = datetime.now(UTC)
    high_water = cursor.high_water or format_ts(now - LOOKBACK)
    since = format_ts(parse_ts(high_water) - LOOKBACK)
    with dam.client() as client:
        changes = [
            (a.asset_id, a.date_last_updated or "") for a in client.search([modified_after(since)], slim=True)
        ]
    newest = max([high_water, *(c[1] for c in changes)])
    changes = not_our_own(lineage.store(), "dam", changes)
    return decide(context, asset_key=INVENTORY, changes=changes, cursor=cursor, high_water=newest)
