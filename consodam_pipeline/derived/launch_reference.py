"""The launch plan one edition at a time, as the rules read (domain/launch.py, domain/rights.py): the readable
reference the column-wise plan is checked against, in tests and in `consodam bench launch`."""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl

from consodam_pipeline.domain.launch import LaunchWindow, collection_name, launched


def allowed_at(grant: dict[str, Any] | None, publication: date) -> bool:
    """A member must be visible, with its grant window open on the publication date."""
    return bool(
        grant
        and grant["visible"]
        and (grant["grant_from"] is None or grant["grant_from"] <= publication)
        and (grant["grant_until"] is None or grant["grant_until"] >= publication)
    )


def reference_members(
    editions: pl.DataFrame, links: pl.DataFrame, matrix: pl.DataFrame, window: LaunchWindow, today: date
) -> set[tuple[str, str]]:
    """(collection, asset id) of every cleared, approved version of every edition being launched today."""
    links_of: dict[int, list[str]] = {}
    for link in links.select("product_id", "asset_id").iter_rows(named=True):
        links_of.setdefault(link["product_id"], []).append(link["asset_id"])
    grants = {(g["product_id"], g["asset_id"]): g for g in matrix.iter_rows(named=True)}
    members = set()
    for edition in editions.iter_rows(named=True):
        publication = edition["publication_date"]
        if not (window.contains(publication, today) and launched(edition["publishing_status"])):
            continue
        for asset_id in links_of.get(edition["product_id"], []):
            if allowed_at(grants.get((edition["product_id"], asset_id)), publication):
                members.add((collection_name(publication, edition["imprint"]), asset_id))
    return members
