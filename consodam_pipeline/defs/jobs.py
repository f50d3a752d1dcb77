"""The main jobs: ingest (unpartitioned) and the edition-level sync (partitioned by publication period)."""

import dagster as dg

from consodam_pipeline.sync.partitions import RETRY_ALL_STEPS, edition_executor

consodam_sync = dg.define_asset_job(
    "consodam_sync",
    selection=dg.AssetSelection.groups("ingest"),
    tags=RETRY_ALL_STEPS,
    description="Ingest both systems (incremental; a full reconciliation when due) and run the checks.",
)

consodam_editions = dg.define_asset_job(
    "consodam_editions",
    selection=dg.AssetSelection.groups("rights", "tags", "links", "workflow", "launch"),
    tags=RETRY_ALL_STEPS,
    executor_def=edition_executor(),
    description="Rights matrix, DAM access restrictions, title tags, approved-version links (with their history "
    "in the audit ledger), title packages, stage advances, review tasks, production files and launch "
    "collections for the chosen publication periods; a backfill of every period runs as one run.",
)
