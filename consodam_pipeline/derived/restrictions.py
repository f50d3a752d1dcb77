"""What the DAM should hold for each asset version's access (F4): the `CONSODAM.RIGHTS.*` fields (countries,
window, downloadable) and a security policy — Public when visible and downloadable now, Embargoed before the
window opens, Internal otherwise — from the union of the grants of the editions that use it."""

from __future__ import annotations

from datetime import date

import polars as pl

from consodam_pipeline.derived.rights_matrix import asset_grants
from consodam_pipeline.domain.canonical import canonical_json
from consodam_pipeline.domain.policies import EMBARGOED, INTERNAL, PUBLIC
from consodam_pipeline.domain.territories import TerritorySet, word_columns
from consodam_pipeline.store.tables import PARTITION_COLUMN
from consodam_pipeline.sync.dam_fields import DamFieldsTarget

RIGHTS_FIELD = "CONSODAM.RIGHTS."
RESTRICTIONS = DamFieldsTarget(
    entity="dam_restriction", written_event="restriction_applied", prefix=RIGHTS_FIELD, with_policies=True
)


def _text(value: str) -> pl.Expr:
    return pl.lit(value, dtype=pl.String)


def _policy(today: date) -> pl.Expr:
    start, end = pl.col("grant_from"), pl.col("grant_until")
    live = (start.is_null() | (start <= today)) & (end.is_null() | (end >= today))
    embargoed = start.is_not_null() & (start > today)
    return (
        pl.when(live & pl.col("downloadable"))
        .then(pl.lit(PUBLIC))
        .when(embargoed)
        .then(pl.lit(EMBARGOED))
        .otherwise(pl.lit(INTERNAL))
    )


def _fields() -> pl.Expr:
    """The fields as canonical JSON text (sorted keys), built column-wise."""
    return pl.concat_str(
        _text('{"' + RIGHTS_FIELD + 'COUNTRIES":"'),
        pl.col("territory"),
        _text('","' + RIGHTS_FIELD + 'DOWNLOADABLE":"'),
        pl.when(pl.col("downloadable")).then(_text("true")).otherwise(_text("false")),
        _text('","' + RIGHTS_FIELD + 'VISIBLE_FROM":"'),
        pl.col("grant_from").cast(pl.String).fill_null(""),
        _text('","' + RIGHTS_FIELD + 'VISIBLE_UNTIL":"'),
        pl.col("grant_until").cast(pl.String).fill_null(""),
        _text('"}'),
    )


def desired_restrictions(grants: pl.DataFrame, today: date) -> pl.DataFrame:
    """Per asset version: the DAM fields and security policy its grant calls for, as canonical JSON (the same
    text `canonical_json` gives, so equal states compare equal), built column-wise."""
    words = word_columns("grant")
    territories = grants.select(words).unique()
    described = [TerritorySet.from_words(w).describe() for w in territories.iter_rows()]
    # a catalog has few distinct rights patterns: describe each once
    territories = territories.with_columns(pl.Series("territory", described, pl.String))
    granted = pl.concat_str(
        _text('{"fields":'), _fields(), _text(',"policies":['), _policy(today).cast(pl.String), _text("]}")
    )
    denied = _text(canonical_json({"fields": {}, "policies": [INTERNAL]}))
    desired = pl.when(pl.col("visible")).then(granted).otherwise(denied)
    return grants.join(territories, on=words, how="left").select("asset_id", desired.alias("desired"))


def restriction_writes(
    matrix: pl.DataFrame, inventory: pl.DataFrame, editions: pl.DataFrame, today: date
) -> tuple[DamFieldsTarget, pl.DataFrame]:
    """From the rights matrix of some periods (and those periods' editions): the target for the run, and the
    desired state per version (key, state)."""
    grants = asset_grants(matrix.rename({PARTITION_COLUMN: "period"}, strict=False))
    desired = desired_restrictions(grants, today)
    periods = grants.select("asset_id", pl.col("period").alias(PARTITION_COLUMN))
    versions = inventory.join(periods, on="asset_id", how="inner")
    target = RESTRICTIONS.for_run(versions, editions, frozenset(inventory["asset_id"].to_list()))
    return target, desired.select(pl.col("asset_id").alias("key"), pl.col("desired").alias("state"))
