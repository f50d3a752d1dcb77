"""What the launch collections should hold (F6), column-wise: the editions in the launch window, each with
the approved linked versions its rights allow at publication and its title sheet; and, for what a
collection holds that it should not, why.

The rules: domain/launch.py (the window, the collection of an edition) and domain/rights.py (a member must
be visible, with its grant window open on the publication date). An edition whose package (F5) is
incomplete is published with what is complete and flagged, or held, as the rules file says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import polars as pl

from consodam_pipeline.domain.launch import NOT_LAUNCHED, LaunchWindow, collection_name
from consodam_pipeline.domain.onix import ProductForm
from consodam_pipeline.domain.periods import work_periods
from consodam_pipeline.domain.roles import AssetRole
from consodam_pipeline.domain.title_sheet import SheetEdition, SheetResource, render

PUBLISHER = "consodam sandbox publishing"


@dataclass(frozen=True)
class LaunchPlan:
    launching: pl.DataFrame  # the editions published today, each with its collection
    missing: pl.DataFrame  # product_id → the package requirements not met, of the editions in the window
    cleared: pl.DataFrame  # each launching edition's links, `allowed` when rights allow them at publication
    held: int  # editions in the window held back for an incomplete package


def launch_plan(
    editions: pl.DataFrame,
    links: pl.DataFrame,
    matrix: pl.DataFrame,
    packages: pl.DataFrame,
    window: LaunchWindow,
    today: date,
) -> LaunchPlan:
    launching = in_window(editions, window, today)
    missing = incomplete(packages).join(launching.select("product_id"), on="product_id")
    held = 0
    if window.incomplete_packages == "hold":
        held = missing.height
        launching = launching.join(missing, on="product_id", how="anti")
    return LaunchPlan(launching, missing, cleared_links(launching, links, matrix), held)


def title_sheets(
    plan: LaunchPlan, versions: pl.DataFrame, content_url: Callable[[str], str]
) -> dict[str, str]:
    """ISBN → the ONIX 3.0 title sheet of every launching edition."""
    return {
        isbn: render(sheet, PUBLISHER)
        for isbn, sheet in sheet_editions(plan.launching, plan.cleared, versions, content_url).items()
    }


def in_window(editions: pl.DataFrame, window: LaunchWindow, today: date) -> pl.DataFrame:
    """The editions being launched today (in the window, not cancelled or withdrawn), with their collection."""
    start, end = today - timedelta(days=window.days_after), today + timedelta(days=window.days_before)
    launched = editions.filter(
        pl.col("publication_date").is_between(start, end)
        & ~pl.col("publishing_status").is_in(list(NOT_LAUNCHED)).fill_null(False)
    )
    names = [collection_name(d, i) for d, i in launched.select("publication_date", "imprint").iter_rows()]
    return launched.with_columns(pl.Series("collection", names, dtype=pl.String))


def cleared_links(launching: pl.DataFrame, links: pl.DataFrame, matrix: pl.DataFrame) -> pl.DataFrame:
    """Each launching edition's live links whose rights allow them at publication: visible, and the grant
    window open on the publication date."""
    grants = matrix.select("product_id", "asset_id", "visible", "grant_from", "grant_until")
    pub = pl.col("publication_date")
    allowed = (
        pl.col("visible").fill_null(False)
        & (pl.col("grant_from").is_null() | (pl.col("grant_from") <= pub))
        & (pl.col("grant_until").is_null() | (pl.col("grant_until") >= pub))
    )
    return (
        launching.select("product_id", "isbn13", "publication_date", "collection")
        .join(
            links.select("product_id", "role", "asset_id", "version", "resource_content_type"),
            on="product_id",
        )
        .join(grants, on=["product_id", "asset_id"], how="left")
        .with_columns(allowed.alias("allowed"))
    )


def incomplete(packages: pl.DataFrame) -> pl.DataFrame:
    """product_id → the package requirements not met (editions with none missing are left out)."""
    return (
        packages.filter(pl.col("status") != "approved")
        .group_by("product_id")
        .agg(pl.format("{} ({})", "requirement", "status").sort().alias("missing"))
    )


def sheet_edition(row: dict[str, Any], resources: list[SheetResource]) -> SheetEdition:
    return SheetEdition(
        record_reference=f"consodam.{row['isbn13']}",
        isbn13=row["isbn13"],
        title=row["title"],
        subtitle=row["subtitle"],
        product_form=ProductForm.parse(row["product_form"]).value,
        imprint=row["imprint"],
        publisher=PUBLISHER,
        publishing_status=row["publishing_status"],
        publication_date=row["publication_date"],
        contributors=tuple((c["name"], c["role"]) for c in row["contributors"] or []),
        for_sale_worldwide=bool(row["for_sale_worldwide"]),
        for_sale=tuple(row["for_sale_countries"] or ()),
        not_for_sale=tuple(row["not_for_sale_countries"] or ()),
        resources=tuple(resources),
    )


def sheet_editions(
    launching: pl.DataFrame, cleared: pl.DataFrame, versions: pl.DataFrame, content_url: Callable[[str], str]
) -> dict[str, SheetEdition]:
    """ISBN → what its title sheet says: the finalized title data and every cleared, approved asset."""
    facts = versions.select("asset_id", "mime_type", "width_px", "height_px", "name")
    listed = cleared.filter(pl.col("allowed")).join(facts, on="asset_id", how="left").sort("isbn13", "role")
    modes = {r.value: r.mode.value for r in AssetRole.with_onix_codes()}
    by_isbn: dict[str, list[SheetResource]] = {}
    for r in listed.iter_rows(named=True):
        by_isbn.setdefault(r["isbn13"], []).append(
            SheetResource(
                r["resource_content_type"],
                modes[r["role"]],
                content_url(r["asset_id"]),
                r["mime_type"],
                r["width_px"],
                r["height_px"],
                r["name"],
            )
        )
    return {
        row["isbn13"]: sheet_edition(row, by_isbn.get(row["isbn13"], []))
        for row in launching.iter_rows(named=True)
    }


def periods_moving(editions: pl.DataFrame, window: LaunchWindow, day: date) -> list[str]:
    """The periods of the editions that enter the launch window on `day` or left it the day before."""
    moving = editions.filter(pl.col("publication_date").is_in([window.entering(day), window.leaving(day)]))
    periods = work_periods(editions).join(moving.select("work_id").unique(), on="work_id")
    return sorted(periods["period"].to_list())
