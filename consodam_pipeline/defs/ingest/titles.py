"""title_metadata_snapshot: every edition's current record from Consonance, fetched incrementally."""

from collections.abc import Iterator
from typing import Any

import dagster as dg

from consodam_pipeline.clients.consonance import ConsonanceResource
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.store.tables import PolarsParquetIOManager
from consodam_pipeline.sync.consonance_ingest import TitleSource
from consodam_pipeline.sync.ingest import IngestConfig, ingest
from consodam_pipeline.sync.ingest_checks import TITLE_CHECKS


@dg.asset(
    group_name="ingest",
    kinds={"consonance", "polars"},
    pool="consonance_api",
    check_specs=TITLE_CHECKS,
    description="Every edition's current record from Consonance (GraphQL), incremental with a lookback "
    "window; history in the lineage store, bad records in quarantine.",
)
def title_metadata_snapshot(
    context: dg.AssetExecutionContext,
    config: IngestConfig,
    consonance: ConsonanceResource,
    lineage: LineageStoreResource,
    io_manager: dg.ResourceParam[PolarsParquetIOManager],
) -> Iterator[Any]:
    yield from ingest(context, TitleSource(consonance), lineage.store(), io_manager, config)
