"""Edition records from a page of products, column-wise: the fast path of `edition_record`.

A product whose every field passes the rules as written down in columns (a plain valid ISBN-13, known
territories and codes, ISO dates where they are needed, every required field present) becomes its edition
record here. Every other product — a dirty one, or one these columns cannot vouch for — is validated by the
pydantic models and judged by the readable rules (`consonance_ingest.edition_record`), which name the
reasons it is quarantined. The two give the same records: a hypothesis test holds them to it.
"""

from __future__ import annotations

import polars as pl

from consodam_pipeline.domain.isbn import isbn13_valid_expr
from consodam_pipeline.domain.onix import ONIX21_TO_PRODUCT_FORM, PublishingStatus, SalesRightsType
from consodam_pipeline.domain.territories import COUNTRY_CODES
from consodam_pipeline.domain.timestamps import is_iso_day

STATUSES = [s.value for s in PublishingStatus]
RIGHTS_TYPES = [s.value for s in SalesRightsType]
FORMS = {code: form.value for code, form in ONIX21_TO_PRODUCT_FORM.items()}


def _all(column: str, test: pl.Expr) -> pl.Expr:
    """Every element of a list column passes `test` (an empty list does; a null list does not)."""
    return pl.col(column).is_not_null() & pl.col(column).list.eval(test).list.all()


def _clean(no_date_statuses: list[str]) -> pl.Expr:
    work = pl.col("work")
    contribution_ok = (
        pl.element().struct.field("id").is_not_null()
        & pl.element().struct.field("contributor").struct.field("id").is_not_null()
        & pl.element().struct.field("contributor").struct.field("name").is_not_null()
    )
    todo_ok = (
        pl.element().struct.field("name").is_not_null() & pl.element().struct.field("milestone").is_not_null()
    )
    status = pl.col("onixPublishingStatusCode")
    return (
        pl.col("id").is_not_null()
        & pl.col("fullTitle").is_not_null()
        & isbn13_valid_expr("isbn13")
        & _all("forSaleCountryCodes", pl.element().is_in(COUNTRY_CODES))
        & _all("notForSaleCountryCodes", pl.element().is_in(COUNTRY_CODES))
        & pl.col("isForSaleWorldwide").is_not_null()
        & status.is_in(STATUSES)
        & pl.col("onix21ProductFormCode").is_in(list(FORMS))
        & (pl.col("rowSalesRightsTypeCode").is_null() | pl.col("rowSalesRightsTypeCode").is_in(RIGHTS_TYPES))
        & (
            is_iso_day("publicationDate")
            | (pl.col("publicationDate").is_null() & status.is_in(no_date_statuses))
        )
        & (pl.col("salesEmbargoDate").is_null() | is_iso_day("salesEmbargoDate"))
        & (pl.col("imprint").is_null() | pl.col("imprint").struct.field("name").is_not_null())
        & work.is_not_null()
        & work.struct.field("id").is_not_null()
        & work.struct.field("title").is_not_null()
        & _all("contributions", contribution_ok)
        & _all("todos", todo_ok)
    ).fill_null(False)


def _contributors() -> pl.Expr:
    """In sequence order (no number counts as 0; ties keep Consonance's order), name and role."""
    ordered = pl.element().sort_by(
        pl.element().struct.field("sequenceNumber").fill_null(0), maintain_order=True
    )
    return pl.col("contributions").list.eval(
        pl.struct(
            ordered.struct.field("contributor").struct.field("name").alias("name"),
            ordered.struct.field("onixContributorRoleCode").alias("role"),
        )
    )


def _records(clean: pl.DataFrame) -> pl.DataFrame:
    subtitle = pl.col("subtitle")
    todo = pl.element().struct
    return clean.select(
        pl.col("id").alias("product_id"),
        pl.col("isbn13"),
        pl.col("work").struct.field("id").alias("work_id"),
        pl.col("fullTitle").alias("title"),
        pl.when(subtitle.is_null() | (subtitle == ""))
        .then(pl.col("work").struct.field("subtitle"))
        .otherwise(subtitle)
        .alias("subtitle"),
        _contributors().alias("contributors"),
        pl.col("imprint").struct.field("name").alias("imprint"),
        pl.col("onix21ProductFormCode").replace_strict(FORMS).alias("product_form"),
        pl.col("onix21ProductFormCode").alias("product_form_onix21"),
        pl.col("onix21ProductFormCode")
        .replace_strict(FORMS)
        .str.slice(0, 1)
        .replace_strict({"B": "print", "A": "audio"}, default="ebook")
        .alias("format_family"),
        pl.col("publicationDate").alias("publication_date"),
        pl.col("salesEmbargoDate").alias("embargo_date"),
        pl.col("onixPublishingStatusCode").alias("publishing_status"),
        pl.col("projectStageName").alias("project_stage"),
        pl.col("isForSaleWorldwide").alias("for_sale_worldwide"),
        pl.col("forSaleCountryCodes").list.sort().alias("for_sale_countries"),
        pl.col("notForSaleCountryCodes").list.sort().alias("not_for_sale_countries"),
        pl.col("rowSalesRightsTypeCode").alias("row_sales_rights_type"),
        pl.col("salesRightsDescription").alias("sales_rights"),
        pl.col("todos")
        .list.eval(
            pl.struct(
                todo.field("name"),
                todo.field("milestone"),
                todo.field("dueDate").alias("due_date"),
                todo.field("doneDate").alias("done_date"),
            )
        )
        .alias("todos"),
    )


def edition_columns(products: pl.DataFrame, no_date_statuses: list[str]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(the edition records of the products these columns vouch for, the other products' rows)."""
    flagged = products.with_columns(
        pl.col("isbn").struct.field("isbn13").alias("isbn13"),
        pl.col("work").struct.field("contributions").alias("contributions"),
    ).with_columns(_clean(no_date_statuses).alias("clean"))
    clean = flagged.filter(pl.col("clean"))
    rest = flagged.filter(~pl.col("clean")).select(products.columns)
    return _records(clean), rest
