"""dam_change_sensor: probes DAM versions modified after the last high-water mark (slim listing)."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from consodam_pipeline.clients.opentext_dam import OpenTextDamResource, modified_after
from consodam_pipeline.defs.probe import ProbeCursor, decide

INVENTORY = dg.AssetKey("dam_asset_inventory")
LOOKBACK = timedelta(seconds=120)  # DAM timestamps have second granularity; re-read a short window


def _ts(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dg.sensor(
    target=dg.AssetSelection.assets(INVENTORY),
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests dam_asset_inventory when DAM versions were modified since the high-water mark.",
)
def dam_change_sensor(context: dg.SensorEvaluationContext, dam: OpenTextDamResource) -> dg.SensorResult:
    cursor = ProbeCursor.parse(context.cursor)
    now = datetime.now(UTC)
    high_water = cursor.high_water or _ts(now - LOOKBACK)
    since = _ts(datetime.fromisoformat(high_water.replace("Z", "+00:00")) - LOOKBACK)
    with dam.client() as client:
        changes = [
            (a.asset_id, a.date_last_updated or "") for a in client.search([modified_after(since)], slim=True)
        ]
    newest = max([high_water, *(c[1] for c in changes)])
    return decide(context, asset_key=INVENTORY, changes=changes, cursor=cursor, high_water=newest)
