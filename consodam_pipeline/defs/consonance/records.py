"""Consonance product → edition record, with the reasons a product cannot be accepted.

Reasons start with a kind (`invalid_isbn`, `unknown_territory`, `malformed_date`, `missing_date`,
`unknown_code`) so quarantine counts group by kind.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import polars as pl

from consodam_pipeline.clients.consonance import Product
from consodam_pipeline.domain.isbn import InvalidISBNError, normalize_isbn
from consodam_pipeline.domain.onix import (
    PublishingStatus,
    SalesRightsType,
    UnknownCodeError,
    format_family,
    product_form_from_onix21,
)
from consodam_pipeline.domain.territories import UnknownTerritoryError, country_bit

ENTITY = "edition"
SOURCE = "consonance"
# ONIX list 64: these statuses must be sent without a publication date.
NO_DATE_STATUSES = {PublishingStatus.CANCELLED, PublishingStatus.POSTPONED_INDEFINITELY}

TODO = pl.Struct(
    {"name": pl.String(), "milestone": pl.Boolean(), "due_date": pl.String(), "done_date": pl.String()}
)
EDITION_SCHEMA: dict[str, pl.DataType] = {
    "product_id": pl.Int64(),
    "isbn13": pl.String(),
    "work_id": pl.Int64(),
    "title": pl.String(),
    "subtitle": pl.String(),
    "contributors": pl.List(pl.Struct({"name": pl.String(), "role": pl.String()})),
    "imprint": pl.String(),
    "product_form": pl.String(),
    "product_form_onix21": pl.String(),
    "format_family": pl.String(),
    "publication_date": pl.String(),
    "embargo_date": pl.String(),
    "publishing_status": pl.String(),
    "project_stage": pl.String(),
    "for_sale_worldwide": pl.Boolean(),
    "for_sale_countries": pl.List(pl.String()),
    "not_for_sale_countries": pl.List(pl.String()),
    "row_sales_rights_type": pl.String(),
    "sales_rights": pl.String(),
    "todos": pl.List(TODO),
}

COLUMN_DOCS = {
    "product_id": "Consonance product id (the record key: stable across ISBN corrections)",
    "isbn13": "validated, normalised ISBN-13",
    "product_form": "ONIX 3.0 List 150 code",
    "format_family": "print | ebook | audio",
    "publication_date": "ONIX PublishingDateRole 01",
    "embargo_date": "ONIX PublishingDateRole 02 (sales embargo lifts)",
    "row_sales_rights_type": "ONIX ROWSalesRightsType (List 46) for territories not named",
    "project_stage": "where the title is in production (Consonance's projectStageName)",
    "todos": "production to-dos: name, milestone flag, due and done dates",
}


def _date(value: str | None, label: str, reasons: list[str], required: bool) -> str | None:
    if value is None or value == "":
        if required:
            reasons.append(f"missing_date: no {label}")
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        reasons.append(f"malformed_date: {label} {value!r} is not YYYY-MM-DD")
        return None


def edition_record(product: Product) -> tuple[dict[str, Any] | None, list[str]]:
    reasons: list[str] = []
    isbn13: str | None = None
    raw_isbn = product.isbn.isbn13 if product.isbn else None
    try:
        isbn13 = normalize_isbn(raw_isbn)
    except InvalidISBNError as exc:
        reasons.append(f"invalid_isbn: {exc.reason} ({raw_isbn!r})")
    for code in [*product.for_sale_country_codes, *product.not_for_sale_country_codes]:
        try:
            country_bit(code)
        except UnknownTerritoryError:
            reasons.append(f"unknown_territory: {code!r} is not an ISO 3166-1 country")
    status = form = None
    try:
        status = PublishingStatus.parse(product.onix_publishing_status_code or "00")
        form = product_form_from_onix21(product.onix21_product_form_code or "")
        if product.row_sales_rights_type_code is not None:
            SalesRightsType.parse(product.row_sales_rights_type_code)
    except UnknownCodeError as exc:
        reasons.append(f"unknown_code: {exc}")
    publication = _date(
        product.publication_date, "publication date", reasons, required=status not in NO_DATE_STATUSES
    )
    embargo = _date(product.sales_embargo_date, "sales embargo date", reasons, required=False)
    if reasons or form is None or status is None:
        return None, reasons
    return {
        "product_id": product.id,
        "isbn13": isbn13,
        "work_id": product.work.id,
        "title": product.full_title,
        "subtitle": product.subtitle or product.work.subtitle,
        "contributors": [
            {"name": c.contributor.name, "role": c.onix_contributor_role_code}
            for c in sorted(product.work.contributions, key=lambda c: c.sequence_number or 0)
        ],
        "imprint": product.imprint.name if product.imprint else None,
        "product_form": form.value,
        "product_form_onix21": product.onix21_product_form_code,
        "format_family": format_family(form).value,
        "publication_date": publication,
        "embargo_date": embargo,
        "publishing_status": status.value,
        "project_stage": product.project_stage_name,
        "for_sale_worldwide": product.is_for_sale_worldwide,
        "for_sale_countries": sorted(product.for_sale_country_codes),
        "not_for_sale_countries": sorted(product.not_for_sale_country_codes),
        "row_sales_rights_type": product.row_sales_rights_type_code,
        "sales_rights": product.sales_rights_description,
        "todos": [
            {"name": t.name, "milestone": t.milestone, "due_date": t.due_date, "done_date": t.done_date}
            for t in product.todos
        ],
    }, []


def typed_editions(frame: pl.DataFrame) -> pl.DataFrame:
    """Decoded payloads → the snapshot's column types (dates as dates), sorted by product id."""
    return (
        frame.select(list(EDITION_SCHEMA))
        .with_columns(
            pl.col("publication_date").str.to_date(strict=False),
            pl.col("embargo_date").str.to_date(strict=False),
        )
        .sort("product_id")
    )
