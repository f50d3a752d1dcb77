"""rights_matrix (F4 derived) and dam_access_restrictions (F4 sync), partitioned by publication period."""

from datetime import UTC, date, datetime

import dagster as dg
import polars as pl

from consodam_pipeline.clients.opentext_dam import OpenTextDamResource
from consodam_pipeline.defs.editions import EDITION_CHANGES, by_period, partition_slice, version_slots
from consodam_pipeline.defs.rights.matrix import asset_grants
from consodam_pipeline.defs.rights.matrix import rights_matrix as build_matrix
from consodam_pipeline.defs.rights.verify import embargo_breaches, violations
from consodam_pipeline.domain.roles import MARKETING_ROLES
from consodam_pipeline.domain.territories import TerritorySet, word_columns
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.store.tables import PARTITION_COLUMN
from consodam_pipeline.sync.dam_fields import DamFieldsTarget
from consodam_pipeline.sync.engine import frame_context, state_json, sync
from consodam_pipeline.sync.report import (
    EDITION_KEY_COLUMNS,
    TITLES,
    VERSION_COLUMNS,
    VERSIONS,
    column_lineage,
    column_schema,
    summary_markdown,
    write_metadata,
    write_report,
    writes_check_spec,
)

RIGHTS_FIELD = "CONSODAM.RIGHTS."
INTERNAL, PUBLIC, EMBARGOED = 1, 2, 3  # the DAM's security policies (see /otmmapi/v6/securitypolicies)
RESTRICTION_ENTITY = "dam_restriction"


CHECK_SAMPLE = 5000
_SALES_RIGHTS = [
    "for_sale_worldwide",
    "for_sale_countries",
    "not_for_sale_countries",
    "row_sales_rights_type",
]
_LICENSE = ["license_from", "license_until", "approval_status"]
MATRIX_LINEAGE: dict[str, dict[str, list[str]]] = {
    **EDITION_KEY_COLUMNS,
    **VERSION_COLUMNS,
    "countries": {TITLES: _SALES_RIGHTS},
    **{f"grant_w{i}": {TITLES: _SALES_RIGHTS} for i in range(4)},
    "grant_from": {TITLES: ["publication_date", "embargo_date"], VERSIONS: ["license_from"]},
    "grant_until": {VERSIONS: ["license_until"]},
    "visible": {TITLES: ["embargo_date"], VERSIONS: _LICENSE},
    "downloadable": {TITLES: ["embargo_date"], VERSIONS: _LICENSE},
    "denied_reason": {TITLES: [*_SALES_RIGHTS, "embargo_date"], VERSIONS: _LICENSE},
}


@dg.asset(
    **by_period(EDITION_CHANGES),
    deps=[EDITION_CHANGES],
    check_specs=[
        dg.AssetCheckSpec(
            "grants_follow_the_rules",
            asset="rights_matrix",
            blocking=True,
            description="A sample of rows recomputed one by one with the scalar rules agrees.",
        ),
        dg.AssetCheckSpec(
            "no_grant_before_embargo",
            asset="rights_matrix",
            blocking=True,
            description="No asset is granted before its edition's sales embargo lifts.",
        ),
        dg.AssetCheckSpec(
            "assets_without_rights_source",
            asset="rights_matrix",
            description="Newest approved versions that no edition grants anywhere.",
        ),
    ],
    group_name="rights",
    kinds={"polars"},
    description="Edition × DAM asset version → where (territory mask) and when (window) it may be seen and "
    "downloaded, and why not where it may not. Rules: consodam_pipeline/domain/rights.py.",
)
def rights_matrix(  # type: ignore[no-untyped-def]  # an annotation would be read as the output's type
    context: dg.AssetExecutionContext,
    title_metadata_snapshot: pl.DataFrame,
    dam_asset_inventory: pl.DataFrame,
):
    keys = list(context.partition_keys)
    editions, versions = partition_slice(title_metadata_snapshot, dam_asset_inventory, keys)
    matrix = build_matrix(editions, versions)
    granted = matrix.filter(pl.col("visible"))
    denied = matrix.filter(~pl.col("visible")).group_by("denied_reason").len().sort("len", descending=True)
    problems = violations(matrix, editions, versions, CHECK_SAMPLE)
    breaches = embargo_breaches(matrix)
    return dg.MaterializeResult(
        value=matrix.rename({"period": PARTITION_COLUMN}),
        check_results=[
            dg.AssetCheckResult(
                check_name="grants_follow_the_rules",
                passed=not problems,
                metadata={
                    "rows_checked": min(matrix.height, CHECK_SAMPLE),
                    "disagreements": len(problems),
                    "examples": dg.MetadataValue.md("\n".join(f"- {p}" for p in problems[:10]) or "none"),
                },
            ),
            dg.AssetCheckResult(
                check_name="no_grant_before_embargo",
                passed=breaches.height == 0,
                metadata={"breaches": breaches.height},
            ),
            no_rights_source(matrix, versions),
        ],
        metadata={
            "dagster/row_count": matrix.height,
            "dagster/column_schema": column_schema(matrix.schema),
            "dagster/column_lineage": column_lineage(MATRIX_LINEAGE, matrix.columns),
            "partitions": len(keys),
            "granted_rows": granted.height,
            "downloadable_rows": matrix.filter(pl.col("downloadable")).height,
            "denied_by_reason": {str(r): int(n) for r, n in denied.iter_rows()},
            "summary": summary_markdown(
                "Rights matrix",
                [
                    ("periods", ", ".join(keys[:6]) + (" …" if len(keys) > 6 else "")),
                    ("edition × version rows", matrix.height),
                    ("granted", granted.height),
                ]
                + [(f"denied: {r}", n) for r, n in denied.iter_rows()],
            ),
        },
    )


def no_rights_source(matrix: pl.DataFrame, versions: pl.DataFrame) -> dg.AssetCheckResult:
    newest = versions.filter(
        (pl.col("approval_status") == "approved") & pl.col("role").is_in(MARKETING_ROLES)
    ).filter(pl.col("version") == pl.col("version").max().over("original_asset_id"))
    granted = matrix.filter(pl.col("visible"))["asset_id"].unique().implode()
    orphans = newest.filter(pl.col("orphan_tag")).height
    ungranted = newest.filter(~pl.col("orphan_tag") & ~pl.col("asset_id").is_in(granted)).height
    return dg.AssetCheckResult(
        check_name="assets_without_rights_source",
        passed=orphans + ungranted == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"orphan_tagged": orphans, "no_edition_grants_them": ungranted},
    )


def desired_restrictions(grants: pl.DataFrame, today: date) -> pl.DataFrame:
    """Per asset version: the DAM fields and security policy its grant calls for, as canonical JSON (the same
    text `state_json` gives, so equal states compare equal), built column-wise."""
    words = word_columns("grant")
    territories = grants.select(words).unique()
    territories = territories.with_columns(
        pl.Series(
            "territory", [TerritorySet.from_words(w).describe() for w in territories.iter_rows()], pl.String
        )
    )  # a catalog has few distinct rights patterns: describe each once
    start, end = pl.col("grant_from"), pl.col("grant_until")
    live = (start.is_null() | (start <= today)) & (end.is_null() | (end >= today))
    policy = (
        pl.when(live & pl.col("downloadable")).then(pl.lit(PUBLIC))
        .when(start.is_not_null() & (start > today)).then(pl.lit(EMBARGOED))
        .otherwise(pl.lit(INTERNAL))
    )  # fmt: skip

    def text(value: str) -> pl.Expr:
        return pl.lit(value, dtype=pl.String)

    fields = pl.concat_str(
        text('{"' + RIGHTS_FIELD + 'COUNTRIES":"'), pl.col("territory"),
        text('","' + RIGHTS_FIELD + 'DOWNLOADABLE":"'),
        pl.when(pl.col("downloadable")).then(text("true")).otherwise(text("false")),
        text('","' + RIGHTS_FIELD + 'VISIBLE_FROM":"'), start.cast(pl.String).fill_null(""),
        text('","' + RIGHTS_FIELD + 'VISIBLE_UNTIL":"'), end.cast(pl.String).fill_null(""), text('"}'),
    )  # fmt: skip
    granted = pl.concat_str(
        text('{"fields":'), fields, text(',"policies":['), policy.cast(pl.String), text("]}")
    )
    desired = (
        pl.when(pl.col("visible"))
        .then(granted)
        .otherwise(text(state_json({"fields": {}, "policies": [INTERNAL]})))
    )
    return grants.join(territories, on=words, how="left").select("asset_id", desired.alias("desired"))


RESTRICTIONS = DamFieldsTarget(
    entity=RESTRICTION_ENTITY, written_event="restriction_applied", prefix=RIGHTS_FIELD, with_policies=True
)


@dg.asset(
    **by_period("rights_matrix"),
    group_name="rights",
    kinds={"opentext"},
    pool="dam_api",
    check_specs=[writes_check_spec("dam_access_restrictions")],
    description="Pushes the rights matrix to the DAM: RIGHTS_* metadata and a security policy per asset "
    "version (Public when visible and downloadable now, Embargoed before the window, Internal otherwise). "
    "Writes only what differs; every write is in the audit ledger with before and after.",
)
def dam_access_restrictions(  # type: ignore[no-untyped-def]  # an annotation would be read as the output's type
    context: dg.AssetExecutionContext,
    rights_matrix: pl.DataFrame,
    dam_asset_inventory: pl.DataFrame,
    dam: OpenTextDamResource,
    lineage: LineageStoreResource,
):
    store = lineage.store()
    grants = asset_grants(rights_matrix.rename({PARTITION_COLUMN: "period"}, strict=False))
    desired = desired_restrictions(grants, datetime.now(UTC).date())
    versions = dam_asset_inventory.join(desired.select("asset_id"), on="asset_id", how="semi")
    slots = version_slots(versions).join(
        grants.select(pl.col("asset_id").alias("key"), pl.col("period").alias(PARTITION_COLUMN)), on="key"
    )
    with dam.client() as client:
        result = sync(
            RESTRICTIONS, client, store,
            desired=desired.select(pl.col("asset_id").alias("key"), pl.col("desired").alias("state")),
            found=RESTRICTIONS.observed(versions), scope=[], run_id=context.run.run_id,
            context=frame_context(slots), log=context.log,
        )  # fmt: skip
    metadata, check = write_metadata("DAM access restrictions", RESTRICTIONS, result, store)
    return dg.MaterializeResult(value=write_report(result, slots), metadata=metadata, check_results=[check])
