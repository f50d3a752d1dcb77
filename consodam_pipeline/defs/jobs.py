"""The main job: every unpartitioned consodam asset and its checks, in dependency order."""

import dagster as dg

consodam_sync = dg.define_asset_job(
    "consodam_sync",
    selection=dg.AssetSelection.groups("ingest"),
    description="Ingest both systems (incremental; a full reconciliation when due) and run the checks.",
)
