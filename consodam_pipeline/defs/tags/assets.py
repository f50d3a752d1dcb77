"""dam_title_tags (F3): title metadata from Consonance written into each DAM asset's metadata."""

import dagster as dg
import polars as pl

from consodam_pipeline.clients.opentext_dam import OpenTextDamResource
from consodam_pipeline.defs.editions import (
    EDITION_CHANGES,
    by_period,
    partition_slice,
    version_slots,
    work_periods,
)
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.store.tables import PARTITION_COLUMN
from consodam_pipeline.sync.dam_fields import DamFieldsTarget
from consodam_pipeline.sync.engine import frame_context, state_json, sync
from consodam_pipeline.sync.report import write_metadata, write_report, writes_check_spec

TAG_FIELD = "CONSODAM.TAG."
TAGS = ("TITLE", "CONTRIBUTORS", "IMPRINT", "ISBN", "FORMAT", "PUBLICATION_DATE", "TERRITORY")
TAG_ENTITY = "dam_title_tags"
TITLE_TAGS = DamFieldsTarget(entity=TAG_ENTITY, written_event="tags_written", prefix=TAG_FIELD)


def edition_tags(editions: pl.DataFrame) -> pl.DataFrame:
    """One row of tag values per edition."""
    contributors = pl.col("contributors").list.eval(
        pl.concat_str(
            pl.element().struct.field("name"), pl.lit(" ("), pl.element().struct.field("role"), pl.lit(")")
        )
    )
    return editions.select(
        "isbn13",
        "work_id",
        pl.col("title").alias("TITLE"),
        contributors.list.join("; ").alias("CONTRIBUTORS"),
        pl.col("imprint").fill_null("").alias("IMPRINT"),
        pl.col("isbn13").alias("ISBN"),
        pl.col("product_form").alias("FORMAT"),
        pl.col("publication_date").cast(pl.String).fill_null("").alias("PUBLICATION_DATE"),
        pl.col("sales_rights").fill_null("").alias("TERRITORY"),
    )


def tag_fields(editions: pl.DataFrame) -> dict[str, dict[str, str]]:
    """ISBN → the DAM fields an asset of that edition alone carries."""
    return {
        row["isbn13"]: {TAG_FIELD + t: row[t] for t in TAGS}
        for row in edition_tags(editions).iter_rows(named=True)
    }


def desired_tags(editions: pl.DataFrame, versions: pl.DataFrame) -> pl.DataFrame:
    """(asset_id, desired) for the newest version of every asset: an edition's cover carries its edition's
    tags; a work-wide asset carries every edition's, joined with '; ' in ISBN order."""
    per_edition = edition_tags(editions)
    per_work = (
        per_edition.sort("ISBN")
        .group_by("work_id")
        .agg(
            pl.col("TITLE").first(),
            pl.col("CONTRIBUTORS").first(),
            pl.col("IMPRINT").unique(maintain_order=True).str.join("; "),
            *[pl.col(c).str.join("; ") for c in ("ISBN", "FORMAT", "PUBLICATION_DATE", "TERRITORY")],
        )
    )
    latest = versions.filter(pl.col("is_latest") & ~pl.col("orphan_tag"))
    specific = (
        latest.filter(pl.col("isbn13").is_not_null())
        .select("asset_id", "isbn13")
        .join(per_edition.drop("work_id"), on="isbn13")
    )
    shared = (
        latest.filter(pl.col("isbn13").is_null()).select("asset_id", "work_id").join(per_work, on="work_id")
    )
    tags = pl.concat([specific.drop("isbn13"), shared.drop("work_id")], how="vertical_relaxed")
    rows = [
        state_json({"fields": {TAG_FIELD + t: row[t] for t in TAGS}})
        for row in tags.select(*TAGS).iter_rows(named=True)
    ]  # the same canonical JSON as the observed side, so equal states compare equal
    return tags.select("asset_id").with_columns(pl.Series("desired", rows, dtype=pl.String)).sort("asset_id")


@dg.asset(
    **by_period(EDITION_CHANGES),
    deps=[EDITION_CHANGES],
    group_name="tags",
    kinds={"opentext"},
    pool="dam_api",
    check_specs=[writes_check_spec("dam_title_tags")],
    description="ISBN, title, contributors, imprint, format, publication date and rights territory written "
    "into each asset's newest version (lock → update → unlock), only where they differ.",
)
def dam_title_tags(  # type: ignore[no-untyped-def]  # an annotation would be read as the output's type
    context: dg.AssetExecutionContext,
    title_metadata_snapshot: pl.DataFrame,
    dam_asset_inventory: pl.DataFrame,
    dam: OpenTextDamResource,
    lineage: LineageStoreResource,
):
    editions, versions = partition_slice(
        title_metadata_snapshot, dam_asset_inventory, list(context.partition_keys)
    )
    desired = desired_tags(editions, versions)
    tagged = versions.join(desired.select("asset_id"), on="asset_id", how="semi")
    slots = version_slots(tagged).join(
        work_periods(editions).select("work_id", pl.col("period").alias(PARTITION_COLUMN)),
        on="work_id",
        how="left",
    )
    store = lineage.store()
    with dam.client() as client:
        result = sync(
            TITLE_TAGS, client, store,
            desired=desired.select(pl.col("asset_id").alias("key"), pl.col("desired").alias("state")),
            found=TITLE_TAGS.observed(tagged), scope=[], run_id=context.run.run_id,
            context=frame_context(slots), log=context.log,
        )  # fmt: skip
    metadata, check = write_metadata("DAM title tags", TITLE_TAGS, result, store)
    return dg.MaterializeResult(value=write_report(result, slots), metadata=metadata, check_results=[check])
