"""dam_access_restrictions (F4 write): the rights matrix pushed to the DAM."""

from datetime import UTC, datetime

import dagster as dg
import polars as pl

from consodam_pipeline.clients.opentext_dam import OpenTextDamResource
from consodam_pipeline.derived.restrictions import restriction_writes
from consodam_pipeline.domain.periods import works_in
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.sync.write_asset import write, write_asset


@write_asset(
    "dam_access_restrictions",
    group="rights",
    writes_to="dam",
    description="Pushes the rights matrix to the DAM: RIGHTS_* metadata and a security policy per asset "
    "version (Public when visible and downloadable now, Embargoed before the window, Internal otherwise). "
    "Writes only what differs; every write is in the audit ledger with before and after.",
)
def dam_access_restrictions(  # type: ignore[no-untyped-def]  # an annotation would be read as the output's type
    context: dg.AssetExecutionContext,
    rights_matrix: pl.DataFrame,
    title_metadata_snapshot: pl.DataFrame,
    dam_asset_inventory: pl.DataFrame,
    dam: OpenTextDamResource,
    lineage: LineageStoreResource,
):
    editions = works_in(title_metadata_snapshot, context.partition_keys)
    today = datetime.now(UTC).date()
    target, desired = restriction_writes(rights_matrix, dam_asset_inventory, editions, today)
    with dam.client() as client:
        return write(context, target, client, lineage.store(), desired, title="DAM access restrictions")
