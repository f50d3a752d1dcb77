"""Consonance's product pages read straight into columns, for the title ingest.

polars decodes a page's JSON against the schema of the selection (`PRODUCT_FIELDS`): about twenty times
faster than parsing it into dicts and validating a model per product, which was most of the ingest's time.
The schema is the boundary here, as it is for the DAM's asset pages: a complete body of another shape is
reported as the API having changed (clients.http), and what the column-wise rules cannot vouch for is
judged by the pydantic models and the readable rules (sync.consonance_columns).
"""

from __future__ import annotations

import polars as pl

S = pl.String()
PRODUCT_FRAME = pl.Struct(
    {
        "id": pl.Int64(),
        "isbn": pl.Struct({"isbn13": S}),
        "fullTitle": S,
        "subtitle": S,
        "publicationDate": S,
        "onixPublishingStatusCode": S,
        "onix21ProductFormCode": S,
        "forSaleCountryCodes": pl.List(S),
        "notForSaleCountryCodes": pl.List(S),
        "isForSaleWorldwide": pl.Boolean(),
        "salesRightsDescription": S,
        "rowSalesRightsTypeCode": S,
        "salesEmbargoDate": S,
        "imprint": pl.Struct({"name": S}),
        "projectStageName": S,
        "updatedAt": S,
        "todos": pl.List(pl.Struct({"name": S, "milestone": pl.Boolean(), "dueDate": S, "doneDate": S})),
        "work": pl.Struct(
            {
                "id": pl.Int64(),
                "title": S,
                "subtitle": S,
                "contributions": pl.List(
                    pl.Struct(
                        {
                            "id": pl.Int64(),
                            "sequenceNumber": pl.Int64(),
                            "onixContributorRoleCode": S,
                            "contributor": pl.Struct({"id": pl.Int64(), "name": S}),
                        }
                    )
                ),
            }
        ),
        "pageKey": pl.Int64(),
    }
)
_ENVELOPE = pl.Struct(
    {
        "data": pl.Struct({"products": pl.List(PRODUCT_FRAME)}),
        "errors": pl.List(pl.Struct({"message": S})),
    }
)


class ProductPage:
    """A decoded page: its products as columns, or the errors GraphQL answered with."""

    def __init__(self, products: pl.DataFrame | None, errors: list[str]) -> None:
        self.products = products
        self.errors = errors


def decode_product_page(body: bytes) -> ProductPage:
    envelope = pl.DataFrame({"raw": [body.decode()]}).select(pl.col("raw").str.json_decode(_ENVELOPE))
    row = envelope.unnest("raw")
    errors = [str(e["message"]) for e in (row["errors"].to_list()[0] or [])]
    products = row.select(pl.col("data").struct.field("products"))["products"]
    if products[0] is None:
        return ProductPage(None, errors)
    if not products[0].len():
        return ProductPage(pl.DataFrame(schema={f.name: f.dtype for f in PRODUCT_FRAME.fields}), errors)
    frame = products.explode().struct.unnest()
    return ProductPage(frame, errors)
