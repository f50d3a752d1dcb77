"""The title tags (F3) each DAM asset should carry: ISBN, title, contributors, imprint, format, publication date
and rights territory of its edition in its newest version; a work-wide asset carries every edition's values,
joined with '; ' in ISBN order."""

from __future__ import annotations

import polars as pl

from consodam_pipeline.domain.canonical import canonical_json
from consodam_pipeline.domain.periods import with_period
from consodam_pipeline.store.tables import PARTITION_COLUMN
from consodam_pipeline.sync.dam_fields import DamFieldsTarget

TAG_FIELD = "CONSODAM.TAG."
TAGS = ("TITLE", "CONTRIBUTORS", "IMPRINT", "ISBN", "FORMAT", "PUBLICATION_DATE", "TERRITORY")
TITLE_TAGS = DamFieldsTarget(entity="dam_title_tags", written_event="tags_written", prefix=TAG_FIELD)


def edition_tags(editions: pl.DataFrame) -> pl.DataFrame:
    """One row of tag values per edition."""
    name, role = pl.element().struct.field("name"), pl.element().struct.field("role")
    contributors = pl.col("contributors").list.eval(pl.concat_str(name, pl.lit(" ("), role, pl.lit(")")))
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
    joined = [pl.col(c).str.join("; ") for c in ("ISBN", "FORMAT", "PUBLICATION_DATE", "TERRITORY")]
    per_work = (
        per_edition.sort("ISBN")
        .group_by("work_id")
        .agg(
            pl.col("TITLE").first(),
            pl.col("CONTRIBUTORS").first(),
            pl.col("IMPRINT").unique(maintain_order=True).str.join("; "),
            *joined,
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
        canonical_json({"fields": {TAG_FIELD + t: row[t] for t in TAGS}})
        for row in tags.select(*TAGS).iter_rows(named=True)
    ]  # the same canonical JSON as the observed side, so equal states compare equal
    return tags.select("asset_id").with_columns(pl.Series("desired", rows, dtype=pl.String)).sort("asset_id")


def tag_writes(
    editions: pl.DataFrame, versions: pl.DataFrame, held: frozenset[str]
) -> tuple[DamFieldsTarget, pl.DataFrame]:
    """For some periods' editions and versions (`held`: every version id the inventory holds): the target
    for the run, and the desired tags (key, state)."""
    desired = desired_tags(editions, versions)
    tagged = with_period(
        versions.join(desired.select("asset_id"), on="asset_id", how="semi"), editions, PARTITION_COLUMN
    )
    target = TITLE_TAGS.for_run(tagged, editions, held)
    return target, desired.select(pl.col("asset_id").alias("key"), pl.col("desired").alias("state"))
