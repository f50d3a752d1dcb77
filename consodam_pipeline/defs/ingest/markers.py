"""edition_changes: the period markers the ingest records, which the edition-level graph reacts to."""

import dagster as dg

from consodam_pipeline.sync.partitions import EDITION_CHANGES, publication_periods

edition_changes = dg.AssetSpec(
    EDITION_CHANGES,
    partitions_def=publication_periods,
    deps=["title_metadata_snapshot", "dam_asset_inventory"],
    group_name="ingest",
    description="A marker per publication period: recorded by the ingest assets for every period their "
    "changes touched. The edition-level assets re-materialize exactly these partitions.",
)
