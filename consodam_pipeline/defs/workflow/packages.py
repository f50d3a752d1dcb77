"""Title packages, column-wise: every edition × requirement of its format → status, for a whole period at once.

The rules are `domain/packages.py` (readable, one edition at a time); this is their columnar form, and a
hypothesis test holds the two together. Each candidate version is one row; the statuses become a ranking
(approved and passing, awaiting review, approved but failing a technical requirement, rejected), and each
(edition, requirement) keeps its best row, ties broken as the reference breaks them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl

from consodam_pipeline.domain.packages import Requirement, Rules
from consodam_pipeline.domain.roles import AssetRole

ROLE_CODES = pl.DataFrame(
    [(r.value, r.content_type.value, r.mode.value) for r in AssetRole.with_onix_codes()],
    schema={"role": pl.String, "content_type": pl.String, "mode": pl.String},
    orient="row",
)
# polars 2.1's streaming engine (its default) has panicked here on string expressions, now and then.
ENGINE = "streaming"
STATUSES = ["approved", "in_review", "fails_technical", "rejected"]  # by rank; none of them: missing
PACKAGE_COLUMNS = [
    "product_id",
    "isbn13",
    "work_id",
    "format_family",
    "imprint",
    "publication_date",
    "project_stage",
    "requirement",
    "requirement_name",
    "status",
    "detail",
    "asset_id",
    "version",
    "approved_by",
    "approved_at",
]


def requirement_frame(rules: Rules) -> pl.DataFrame:
    """One row per (format, requirement, accepted content type and mode)."""
    rows = [
        (family, r.id, r.name, ct, r.mode)
        for family, fmt in rules.formats.items()
        for r in fmt.requires
        for ct in r.content_types
    ]
    schema = ["format_family", "requirement", "requirement_name", "content_type", "mode"]
    return pl.DataFrame(rows, schema={c: pl.String for c in schema}, orient="row")


def technical_checks(r: Requirement) -> list[tuple[pl.Expr, pl.Expr]]:
    """(fails, why) for each technical requirement of r, in the words of domain.packages.technical_failures.
    The requirement's values are literals, so a check is one vectorised comparison over the versions."""
    width, height = pl.col("width_px").fill_null(0), pl.col("height_px").fill_null(0)
    checks = []
    if r.file_formats:
        checks.append(
            (
                ~pl.col("mime_type").is_in(r.file_formats).fill_null(False),
                pl.format(
                    "file format {}, needs " + " or ".join(r.file_formats),
                    pl.col("mime_type").fill_null("unknown"),
                ),
            )
        )
    if r.colour_spaces:
        checks.append(
            (
                ~pl.col("colour_space").is_in(r.colour_spaces).fill_null(False),
                pl.format(
                    "colour space {}, needs " + " or ".join(r.colour_spaces),
                    pl.col("colour_space").fill_null("unknown"),
                ),
            )
        )
    if r.min_width_px:
        checks.append(
            (width < r.min_width_px, pl.format(f"{{}} px wide, needs at least {r.min_width_px}", width))
        )
    if r.min_height_px:
        checks.append(
            (height < r.min_height_px, pl.format(f"{{}} px high, needs at least {r.min_height_px}", height))
        )
    if r.square:
        checks.append(
            (
                (pl.col("width_px") != pl.col("height_px")).fill_null(True),
                pl.format("not square ({} × {} px)", width, height),
            )
        )
    if r.min_pages:
        pages = pl.col("page_count").fill_null(0)
        checks.append((pages < r.min_pages, pl.format(f"{{}} pages, needs at least {r.min_pages}", pages)))
    if r.min_duration_s:
        seconds = pl.col("duration_s").fill_null(0)
        checks.append(
            (
                seconds < r.min_duration_s,
                pl.format(f"{{}} s long, needs at least {int(r.min_duration_s)}", seconds.cast(pl.Int64)),
            )
        )
    return checks


def _per_requirement(
    rules: Rules, pick: Callable[[list[tuple[pl.Expr, pl.Expr]]], pl.Expr], default: pl.Expr
) -> pl.Expr:
    chained: Any = pl
    for family, fmt in rules.formats.items():
        for r in fmt.requires:
            which = (pl.col("format_family") == family) & (pl.col("requirement") == r.id)
            chained = chained.when(which).then(pick(technical_checks(r)))
    return default if chained is pl else chained.otherwise(default)


def passes_expr(rules: Rules) -> pl.Expr:
    """Whether a version passes every technical requirement of the row's requirement."""
    return _per_requirement(
        rules,
        lambda checks: ~pl.any_horizontal([f for f, _ in checks]) if checks else pl.lit(True),
        pl.lit(True),
    )


def failures_expr(rules: Rules) -> pl.Expr:
    """Every technical requirement a version fails, joined with '; '."""

    def joined(checks: list[tuple[pl.Expr, pl.Expr]]) -> pl.Expr:
        listed = (
            pl.concat_list([pl.when(f).then(why) for f, why in checks])
            if checks
            else pl.lit([], pl.List(pl.String))
        )
        return listed.list.drop_nulls().list.join("; ")

    return _per_requirement(rules, joined, pl.lit(""))


def candidates(editions: pl.DataFrame, versions: pl.DataFrame, requirements: pl.DataFrame) -> pl.DataFrame:
    """(edition, requirement, candidate version) rows: versions of a content type and mode the requirement
    accepts, tagged with the edition's ISBN (edition-specific) or only its work (work-wide)."""
    cols = [
        "asset_id",
        "original_asset_id",
        "version",
        "approval_status",
        "approved_by",
        "approved_at",
        "mime_type",
        "width_px",
        "height_px",
        "colour_space",
        "page_count",
        "duration_s",
    ]
    coded = (
        versions.lazy()
        .filter(~pl.col("orphan_tag"))
        .select(*cols, "role", "isbn13", "work_id")
        .join(ROLE_CODES.lazy(), on="role")
        .drop("role")
    )
    owners = editions.lazy().select("product_id", "isbn13", "work_id", "format_family")
    specific = (
        coded.filter(pl.col("isbn13").is_not_null())
        .drop("work_id")
        .join(owners.drop("work_id"), on="isbn13")
        .with_columns(pl.lit(True).alias("edition_specific"))
    )
    shared = (
        coded.filter(pl.col("isbn13").is_null())
        .drop("isbn13")
        .join(owners.drop("isbn13"), on="work_id")
        .with_columns(pl.lit(False).alias("edition_specific"))
    )
    both = pl.concat([specific.drop("isbn13"), shared.drop("work_id")], how="vertical_relaxed")
    joined = both.join(requirements.lazy(), on=["format_family", "content_type", "mode"]).collect()
    # Rechunked: polars 2.1 sometimes panics ("i < self.len()" in binview) when the next streaming query
    # reads string views straight out of this join's chunks.
    return joined.rechunk()


def best_candidates(candidates: pl.DataFrame, rules: Rules) -> pl.DataFrame:
    """(product_id, requirement) → the deciding version, its status and why."""
    slot = ["product_id", "requirement", "original_asset_id"]
    approved = pl.col("approval_status") == "approved"
    ranked = candidates.lazy().with_columns(
        pl.col("version").max().over(slot).alias("newest"),
        pl.when(approved).then(pl.col("version")).max().over(slot).alias("newest_approved"),
    )
    counted = ranked.filter(approved & (pl.col("version") == pl.col("newest_approved"))).with_columns(
        pl.when(passes_expr(rules)).then(0).otherwise(2).alias("rank"),
        pl.col("approved_at").fill_null("").alias("recency"),
    )
    newest = (
        ranked.filter(pl.col("version") == pl.col("newest"))
        .with_columns(
            pl.when(pl.col("approval_status").is_in(["draft", "in_review"]))
            .then(1)
            .when(pl.col("approval_status") == "rejected")
            .then(3)
            .alias("rank"),
            pl.col("version").cast(pl.String).str.zfill(12).alias("recency"),
        )
        .filter(pl.col("rank").is_not_null())
    )
    best = (
        pl.concat([counted, newest], how="vertical_relaxed")
        .sort(
            ["rank", "edition_specific", "recency", "original_asset_id"], descending=[False, True, True, True]
        )
        .unique(subset=["product_id", "requirement"], keep="first", maintain_order=True)
    )
    detail = (
        pl.when(pl.col("rank") == 0)
        .then(pl.format("approved {}", pl.col("approved_at")))
        .when(pl.col("rank") == 1)
        .then(pl.format("v{} is {}", pl.col("version"), pl.col("approval_status").str.replace("_", " ")))
        .when(pl.col("rank") == 2)
        .then(failures_expr(rules))
        .otherwise(pl.format("v{} was rejected", pl.col("version")))
    )
    return best.select(
        "product_id",
        "requirement",
        pl.col("rank").replace_strict(dict(enumerate(STATUSES))).alias("status"),
        detail.alias("detail"),
        "asset_id",
        "version",
        pl.when(pl.col("rank") == 0).then(pl.col("approved_by")).alias("approved_by"),
        pl.when(pl.col("rank") == 0).then(pl.col("approved_at")).alias("approved_at"),
    ).collect()


def evaluate_packages(editions: pl.DataFrame, versions: pl.DataFrame, rules: Rules) -> pl.DataFrame:
    """Every edition × requirement of its format (PACKAGE_COLUMNS), missing where no candidate exists."""
    requirements = requirement_frame(rules)
    expected = editions.join(
        requirements.select("format_family", "requirement", "requirement_name").unique(maintain_order=True),
        on="format_family",
    )
    best = best_candidates(candidates(editions, versions, requirements), rules)
    return (
        expected.join(best, on=["product_id", "requirement"], how="left")
        .with_columns(
            pl.col("status").fill_null("missing"),
            pl.col("detail").fill_null("no asset in the DAM"),
        )
        .select(PACKAGE_COLUMNS)
        .sort("product_id", "requirement")
    )


def with_milestones(packages: pl.DataFrame, rules: Rules) -> pl.DataFrame:
    """Each row with the milestone its edition is at (its stage's), and whether that milestone needs it."""
    pairs = [
        (m.stage, m.name, family, r.id)
        for m in rules.milestones
        for family in rules.formats
        for r in rules.needed(family, m)
    ]
    keys = {
        "project_stage": pl.String,
        "milestone": pl.String,
        "format_family": pl.String,
        "requirement": pl.String,
    }
    needs = pl.DataFrame(pairs, schema=keys, orient="row")
    at = pl.DataFrame(
        [(m.stage, m.name) for m in rules.milestones],
        schema={"project_stage": pl.String, "milestone": pl.String},
        orient="row",
    )
    return (
        packages.join(at, on="project_stage", how="left")
        .join(
            needs.with_columns(pl.lit(True).alias("needed")),
            on=["project_stage", "milestone", "format_family", "requirement"],
            how="left",
        )
        .with_columns(pl.col("needed").fill_null(False))
    )


def edition_summary(packages: pl.DataFrame) -> pl.DataFrame:
    """Per edition: requirements met of all, and of those its current milestone needs; what is missing."""
    met = pl.col("status") == "approved"
    return (
        packages.group_by("product_id", maintain_order=True)
        .agg(
            pl.col(
                "isbn13",
                "work_id",
                "format_family",
                "imprint",
                "publication_date",
                "project_stage",
                "milestone",
            ).first(),
            pl.len().alias("requirements"),
            met.sum().alias("met"),
            (pl.col("needed") & ~met).sum().alias("needed_unmet"),
            pl.col("needed").any().alias("at_milestone"),
            pl.format("{} ({})", "requirement", "status").filter(~met).alias("missing"),
            pl.format("{} ({})", "requirement", "status")
            .filter(pl.col("needed") & ~met)
            .alias("milestone_missing"),
        )
        .with_columns((pl.col("met") / pl.col("requirements")).alias("completeness"))
    )
