"""consonance_change_sensor: probes products likely changed since yesterday (id + updatedAt only)."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from consodam_pipeline.clients.consonance import ConsonanceResource
from consodam_pipeline.defs.probe import ProbeCursor, decide, not_our_own
from consodam_pipeline.store.resource import LineageStoreResource

TITLES = dg.AssetKey("title_metadata_snapshot")
PROBE_DAYS = 1  # changedSince is date-granular: today and yesterday cover any tick interval under a day


@dg.sensor(
    target=dg.AssetSelection.assets(TITLES),
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests title_metadata_snapshot when Consonance's recent-changes window changes "
    "(consodam's own writes left out; nothing while a run for it is queued or in progress).",
)
def consonance_change_sensor(
    context: dg.SensorEvaluationContext, consonance: ConsonanceResource, lineage: LineageStoreResource
) -> dg.SensorResult:
    since = (datetime.now(UTC) - timedelta(days=PROBE_DAYS)).date()
    with consonance.client() as client:
        changes = [
            (str(p.id), p.updated_at or "")
            for page in client.iter_product_stamps(changed_since=since)
            for p in page
        ]
    changes = not_our_own(lineage.store(), "consonance", changes)
    return decide(context, asset_key=TITLES, changes=changes, cursor=ProbeCursor.parse(context.cursor))
