"""Title packages, column-wise: every edition × requirement of its format → status, for a whole period at once.

The rules are `domain/packages.py` (readable, one edition at a time); this is their columnar form, and a
hypothesis test holds the two together. The pass works on numbers and row positions, and touches text
only where the answer is written:
1. each version that can count gets its asset's verdict once (`coded_versions`: its newest approved
   version counts, its newest version is the one in progress), before any edition is joined;
2. only those deciding versions are joined to the editions they belong to and the requirements they may
   meet (`candidates`), and ranked (`ranked_candidates`): approved and passing, awaiting review, approved
   but failing a technical requirement, rejected;
3. each (edition, requirement) keeps its best row (`best_candidates`), ties broken as the reference breaks
   them, and is written out in words with the version's facts gathered by position (`described`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import polars as pl

from consodam_pipeline.derived.versions import APPROVED, newest_approved_version
from consodam_pipeline.domain.packages import FormatFamily, Requirement, Rules
from consodam_pipeline.domain.roles import AssetRole

ROLE_CODES = pl.DataFrame(
    [(r.value, r.content_type.value, r.mode.value) for r in AssetRole.with_onix_codes()],
    schema={"role": pl.String, "content_type": pl.String, "mode": pl.String},
    orient="row",
)
# The edition columns a package row carries.
EDITION_COLUMNS = (
    "product_id",
    "isbn13",
    "work_id",
    "format_family",
    "imprint",
    "publication_date",
    "project_stage",
)
STATUSES = ["approved", "in_review", "fails_technical", "rejected"]  # by rank; none of them: missing
PACKAGE_COLUMNS = [
    *EDITION_COLUMNS,
    "requirement",
    "requirement_name",
    "status",
    "detail",
    "asset_id",
    "version",
    "approved_by",
    "approved_at",
]


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


@dataclass(frozen=True)
class RequirementCodes:
    """The rules as small integers, so the evaluation joins, groups and sorts numbers, never text.

    `fit` numbers each (content type, mode) an asset role has; `rq` numbers each (format, requirement) in
    (format, requirement id) order, so sorting by it sorts by the id within an edition's format."""

    families: dict[FormatFamily, int]
    roles: dict[str, int]  # role → fit, for the roles some requirement accepts
    fits: pl.DataFrame  # family, fit → rq
    names: pl.DataFrame  # family, rq, requirement, requirement_name
    by_rq: dict[int, Requirement]

    @classmethod
    def of(cls, rules: Rules) -> RequirementCodes:
        pairs = sorted({(ct, mode) for _, ct, mode in ROLE_CODES.iter_rows()})
        fit_of = {pair: i for i, pair in enumerate(pairs)}
        families = {family: i for i, family in enumerate(rules.formats)}
        listed = sorted(
            ((family, r) for family, fmt in rules.formats.items() for r in fmt.requires),
            key=lambda fr: (fr[0], fr[1].id),
        )
        by_rq = {rq: r for rq, (_, r) in enumerate(listed)}
        fits = [
            (families[family], fit_of[(ct, r.mode)], rq)
            for rq, (family, r) in enumerate(listed)
            for ct in r.content_types
            if (ct, r.mode) in fit_of
        ]
        names = [(families[family], rq, r.id, r.name) for rq, (family, r) in enumerate(listed)]
        accepted = {fit for _, fit, _ in fits}
        roles = {
            role: fit_of[(ct, mode)]
            for role, ct, mode in ROLE_CODES.iter_rows()
            if fit_of[(ct, mode)] in accepted
        }
        return cls(
            families=families,
            roles=roles,
            fits=pl.DataFrame(
                fits, schema={"family": pl.UInt8, "fit": pl.UInt8, "rq": pl.UInt16}, orient="row"
            ),
            names=pl.DataFrame(
                names,
                schema={
                    "family": pl.UInt8,
                    "rq": pl.UInt16,
                    "requirement": pl.String,
                    "requirement_name": pl.String,
                },
                orient="row",
            ),
            by_rq=by_rq,
        )


def passes(requirement: Requirement) -> pl.Expr:
    """Whether a version passes every technical requirement of this requirement."""
    checks = technical_checks(requirement)
    return ~pl.any_horizontal(f for f, _ in checks) if checks else pl.lit(True)


def failures(requirement: Requirement) -> pl.Expr:
    """Every technical requirement of this requirement a version fails, joined with '; '."""
    checks = technical_checks(requirement)
    if not checks:
        return pl.lit("")
    return pl.concat_list([pl.when(f).then(why) for f, why in checks]).list.drop_nulls().list.join("; ")


def per_requirement(
    rows: pl.DataFrame,
    versions: pl.DataFrame,
    codes: RequirementCodes,
    of: Callable[[Requirement], pl.Expr],
    name: str,
    dtype: pl.DataType,
) -> pl.DataFrame:
    """`rows` (with `vi` and `rq`) and `name`: `of(the row's requirement)` over its version's facts — a
    requirement at a time, so each gathers only the facts its own checks read."""
    parts = []
    for (rq,), part in rows.partition_by("rq", as_dict=True).items():
        expression = of(codes.by_rq[int(rq)])
        facts = taken(versions, part["vi"], sorted(set(expression.meta.root_names())))
        parts.append(
            part.with_columns(facts)
            .with_columns(expression.cast(dtype).alias(name))
            .select(*part.columns, name)
        )
    return pl.concat(parts) if parts else rows.with_columns(pl.lit(None, dtype).alias(name))


def taken(versions: pl.DataFrame, rows: pl.Series, columns: Iterable[str]) -> list[pl.Series]:
    """These columns of `versions` at these row numbers, gathered in parallel."""
    return versions.select(pl.col(c).gather(rows) for c in columns).get_columns()


def coded_versions(versions: pl.DataFrame, codes: RequirementCodes) -> pl.DataFrame:
    """The versions that can count towards a package (not orphaned, of a role some requirement accepts):
    `vi` (the row in `versions`), `fit`, the ISBN and work, and what their asset says of them: `counted`
    (its newest approved version), `pending` (its newest version, not approved) and `uniform` (every version
    of the asset has the same role, ISBN and work, so it meets the same requirements of the same editions —
    nearly always)."""
    asset = "original_asset_id"
    # Equal hashes stand for equal (role, ISBN, work), as content hashes do for records across consodam.
    attachment = pl.struct("fit", "isbn13", "work_id").hash()
    return (
        versions.lazy()
        .with_row_index("vi")
        .filter(~pl.col("orphan_tag") & pl.col("role").is_in(list(codes.roles)))
        .select(
            "vi",
            pl.col("role").replace_strict(codes.roles, return_dtype=pl.UInt8).alias("fit"),
            asset,
            "version",
            "approval_status",
            "isbn13",
            "work_id",
        )
        .with_columns(
            (APPROVED & (pl.col("version") == newest_approved_version(asset))).alias("counted"),
            (~APPROVED & (pl.col("version") == pl.col("version").max().over(asset))).alias("pending"),
            (attachment.min().over(asset) == attachment.max().over(asset)).alias("uniform"),
        )
        .drop(asset, "version", "approval_status")
        .collect()
    )


def candidates(
    owners: pl.DataFrame, coded: pl.DataFrame, versions: pl.DataFrame, codes: RequirementCodes
) -> pl.DataFrame:
    """(vi, product_id, rq, edition_specific, counted, pending): each version that can decide a requirement,
    of each edition it belongs to — by the edition's ISBN, or (no ISBN on the version) by its work."""
    flags = ("vi", "fit", "counted", "pending", "uniform")
    deciding = coded.lazy().filter(pl.col("counted") | pl.col("pending") | ~pl.col("uniform"))
    editions = owners.lazy().select("product_id", "isbn13", "work_id", "family")
    specific = (
        deciding.filter(pl.col("isbn13").is_not_null())
        .select(*flags, "isbn13")
        .join(editions.drop("work_id"), on="isbn13")
        .drop("isbn13")
    )
    shared = (
        deciding.filter(pl.col("isbn13").is_null())
        .select(*flags, "work_id")
        .join(editions.drop("isbn13"), on="work_id")
        .drop("work_id")
    )
    both = pl.concat(
        [
            specific.with_columns(pl.lit(True).alias("edition_specific")),
            shared.with_columns(pl.lit(False).alias("edition_specific")),
        ]
    )
    found = both.join(codes.fits.lazy(), on=["family", "fit"]).drop("family", "fit").collect()
    if found["uniform"].all():
        return found.drop("uniform")
    mixed = found.filter(~pl.col("uniform"))
    return pl.concat([found.filter(pl.col("uniform")), _per_slot(mixed, versions)]).drop("uniform")


def _per_slot(found: pl.DataFrame, versions: pl.DataFrame) -> pl.DataFrame:
    """For an asset whose versions differ in role, ISBN or work: newest and newest approved among the
    versions that meet this requirement for this edition, as the rules say."""
    slot = ["product_id", "rq", "original_asset_id"]
    newest = pl.col("version") == pl.col("version").max().over(slot)
    counted = APPROVED & (pl.col("version") == newest_approved_version(slot))
    return (
        found.with_columns(taken(versions, found["vi"], ("original_asset_id", "version", "approval_status")))
        .with_columns(counted.alias("counted"), (newest & ~APPROVED).alias("pending"))
        .filter(pl.col("counted") | pl.col("pending"))
        .select(found.columns)
    )


def ranked_candidates(found: pl.DataFrame, versions: pl.DataFrame, codes: RequirementCodes) -> pl.DataFrame:
    """Each deciding candidate with its `rank` (index in STATUSES): a counted approval is checked against
    the requirement's technical rules (0 passes, 2 fails), a pending version is in review (1) or rejected (3)."""
    counted = per_requirement(
        found.filter(pl.col("counted")), versions, codes, passes, "passes", pl.Boolean()
    )
    checked = counted.select(
        *found.columns,
        pl.lit(0, pl.Int64).alias("recency"),
        pl.when(pl.col("passes")).then(0).otherwise(2).alias("rank"),
    )
    pending = found.filter(pl.col("pending"))
    waiting = pending.with_columns(taken(versions, pending["vi"], ("version", "approval_status"))).select(
        *found.columns,
        pl.col("version").alias("recency"),
        pl.when(pl.col("approval_status").is_in(["draft", "in_review"]))
        .then(1)
        .when(pl.col("approval_status") == "rejected")
        .then(3)
        .alias("rank"),
    )
    return pl.concat([checked, waiting.filter(pl.col("rank").is_not_null())], how="vertical_relaxed")


def best_candidates(ranked: pl.DataFrame, versions: pl.DataFrame) -> pl.DataFrame:
    """(product_id, rq) → the deciding version (`vi`) and its rank.

    The rules' order: the lower rank, then edition-specific, then the more recent (the approval time of a
    counted approval, the version number of a pending one), then the larger asset id. Numbers settle nearly
    every requirement; only the runs still tied on them compare texts."""
    group = ["product_id", "rq"]
    keys = ["rank", "edition_specific", "recency"]
    ordered = ranked.sort([*group, *keys], descending=[False, False, False, True, True])
    same_group = pl.all_horizontal(pl.col(c) == pl.col(c).shift(1) for c in group).fill_null(False)
    tied = same_group & pl.all_horizontal(pl.col(c) == pl.col(c).shift(1) for c in keys).fill_null(False)
    runs = ordered.with_columns(
        (~same_group).alias("first"), tied.alias("tied"), (~tied).cum_sum().alias("run")
    ).with_columns(pl.when(pl.col("first")).then(pl.col("run")).forward_fill().alias("leading_run"))
    contested_runs = runs.filter(pl.col("tied") & (pl.col("run") == pl.col("leading_run")))["run"].unique()
    firsts = runs.filter(pl.col("first") & ~pl.col("run").is_in(contested_runs.implode()))
    if contested_runs.len() == 0:
        return firsts.select(*group, "vi", "rank")
    contested = runs.filter(pl.col("run").is_in(contested_runs.implode()))
    settled = (
        contested.with_columns(taken(versions, contested["vi"], ("approved_at", "original_asset_id")))
        .with_columns(
            pl.when(pl.col("rank").is_in([0, 2])).then(pl.col("approved_at").fill_null("")).alias("approval")
        )
        .sort(
            [*group, "approval", "original_asset_id", "vi"],
            descending=[False, False, True, True, False],
            nulls_last=True,
        )
        .unique(subset=group, keep="first", maintain_order=True)
    )
    return pl.concat([firsts.select(*group, "vi", "rank"), settled.select(*group, "vi", "rank")])


def evaluate_packages(editions: pl.DataFrame, versions: pl.DataFrame, rules: Rules) -> pl.DataFrame:
    """Every edition × requirement of its format (PACKAGE_COLUMNS), missing where no candidate exists."""
    codes = RequirementCodes.of(rules)
    owned = editions.select(
        *EDITION_COLUMNS,
        pl.col("format_family")
        .replace_strict(codes.families, default=None, return_dtype=pl.UInt8)
        .alias("family"),
    ).sort("product_id")
    coded = coded_versions(versions, codes)
    found = candidates(owned, coded, versions, codes)
    best = best_candidates(ranked_candidates(found, versions, codes), versions)
    rows = owned.join(codes.names, on="family", maintain_order="left_right").join(
        best, on=["product_id", "rq"], how="left", maintain_order="left"
    )
    return described(rows, versions, codes).select(PACKAGE_COLUMNS)


_WAITING = {"draft": " is draft", "in_review": " is in review", "rejected": " was rejected"}


def described(rows: pl.DataFrame, versions: pl.DataFrame, codes: RequirementCodes) -> pl.DataFrame:
    """Each (edition, requirement) with its deciding version (`vi`, `rank`; null: none) in words: its
    status, why, and who approved it."""
    shown = rows.with_columns(
        taken(versions, rows["vi"], ("asset_id", "version", "approval_status", "approved_by", "approved_at"))
    )
    counts = pl.col("rank") == 0
    approved_at = pl.when(counts).then(pl.col("approved_at"))
    waiting = pl.col("approval_status").replace_strict(_WAITING, default=None, return_dtype=pl.String)
    detail = pl.coalesce(  # each piece is null but for its own rows; a failing approval's comes below
        pl.concat_str(pl.lit("approved "), approved_at),
        pl.concat_str(pl.lit("v"), pl.col("version").cast(pl.String), waiting),
        pl.when(pl.col("rank").is_null()).then(pl.lit("no asset in the DAM")),
    )
    out = shown.with_columns(
        pl.col("rank")
        .replace_strict(dict(enumerate(STATUSES)), default="missing", return_dtype=pl.String)
        .alias("status"),
        detail.alias("detail"),
        pl.when(counts).then(pl.col("approved_by")).alias("approved_by"),
        approved_at.alias("approved_at"),
    )
    failing = shown.select("vi", "rq", "rank").with_row_index("row").filter(pl.col("rank") == 2)
    if failing.height == 0:
        return out
    why = per_requirement(failing, versions, codes, failures, "why", pl.String())
    return out.with_columns(out["detail"].scatter(why["row"], why["why"]))


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
