"""The title ingest's column-wise path gives exactly the records and reasons of the readable rules."""

from __future__ import annotations

import json
from typing import Any

import polars as pl
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from consodam_pipeline.clients.consonance import Product, validated
from consodam_pipeline.clients.consonance_frames import decode_product_page
from consodam_pipeline.clients.http import ApiError
from consodam_pipeline.domain.isbn import make_isbn13
from consodam_pipeline.sync.consonance_columns import edition_columns
from consodam_pipeline.sync.consonance_ingest import EDITION_SCHEMA, NO_DATE_STATUSES, edition_record

NO_DATE = [s.value for s in NO_DATE_STATUSES]
VALID = make_isbn13("030640615")
DIRTY_ISBNS = [
    VALID[:3] + "-" + VALID[3:],
    VALID[:-1] + str((int(VALID[-1]) + 1) % 10),
    "0306406152",
    "",
    "x",
]


def maybe(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), values)


def pick(clean: list[Any], dirty: list[Any], dirt: bool) -> st.SearchStrategy[Any]:
    return st.sampled_from(clean + dirty if dirt else clean)


def products(dirt: bool) -> st.SearchStrategy[dict[str, Any]]:
    """A product as GraphQL returns it: from clean values only, or from clean and dirty ones alike."""
    countries = st.lists(pick(["GB", "US", "FR", "CA"], ["ROW", "XX"], dirt), max_size=3)
    contribution = st.fixed_dictionaries(
        {
            "id": st.integers(1, 9),
            "sequenceNumber": maybe(st.integers(0, 3)),
            "onixContributorRoleCode": maybe(st.sampled_from(["A01", "A12"])),
            "contributor": st.fixed_dictionaries(
                {"id": st.integers(1, 9), "name": st.sampled_from(["Ana", "Bo", "Cy"])}
            ),
        }
    )
    todo = st.fixed_dictionaries(
        {
            "name": st.sampled_from(["Cover", "Proofs"]),
            "milestone": pick([True, False], [None], dirt),
            "dueDate": maybe(st.just("2024-01-01")),
            "doneDate": maybe(st.just("2024-01-02")),
        }
    )
    status = pick(["04", "02", *NO_DATE], ["4", " 04", "99", None], dirt)
    return st.fixed_dictionaries(
        {
            "isbn": pick(
                [{"isbn13": VALID}], [None, {"isbn13": None}, *({"isbn13": i} for i in DIRTY_ISBNS)], dirt
            ),
            "fullTitle": st.sampled_from(["A Title", "Ünïcode — title", ""]),
            "subtitle": st.sampled_from([None, "", "Sub"]),
            "publicationDate": pick(
                ["2024-05-01", "2025-12-31", None], ["2024-02-30", "20240501", "2024-5-1", ""], dirt
            ),
            "onixPublishingStatusCode": status,
            "onix21ProductFormCode": pick(["BB", "BC", "DG", "AJ", "BA"], ["XX", "", None], dirt),
            "forSaleCountryCodes": countries,
            "notForSaleCountryCodes": countries,
            "isForSaleWorldwide": st.booleans(),
            "salesRightsDescription": maybe(st.just("World")),
            "rowSalesRightsTypeCode": pick([None, "00", "01"], ["ZZ"], dirt),
            "salesEmbargoDate": pick([None, "2024-06-01"], ["soon", ""], dirt),
            "imprint": maybe(st.fixed_dictionaries({"name": st.just("Meridian")})),
            "projectStageName": maybe(st.just("Design")),
            "updatedAt": st.just("2024-09-03T02:21:16.000Z"),
            "todos": st.lists(todo, max_size=2),
            "work": st.fixed_dictionaries(
                {
                    "id": st.integers(1, 50),
                    "title": st.just("Work"),
                    "subtitle": st.sampled_from([None, "", "Of the work"]),
                    "contributions": st.lists(contribution, max_size=4),
                }
            ),
        }
    )


# Pages mostly of clean products (the column path) with a dirty one now and then (the readable rules).
product = st.one_of(products(dirt=False), products(dirt=False), products(dirt=True))


def by_readable_rules(rows: list[dict[str, Any]]) -> tuple[pl.DataFrame, dict[int, list[str]]]:
    good, reasons = [], {}
    for item in validated(Product, rows):
        record, why = edition_record(item)
        if record is None:
            reasons[item.id] = why
        else:
            good.append(record)
    return pl.DataFrame(good, schema=dict(EDITION_SCHEMA)), reasons


def by_columns(body: bytes) -> tuple[pl.DataFrame, dict[int, list[str]]]:
    page = decode_product_page(body)
    assert page.products is not None and not page.errors
    records, rest = edition_columns(page.products, NO_DATE)
    judged, reasons = by_readable_rules(rest.to_dicts())
    typed = records.select([pl.col(n).cast(t) for n, t in EDITION_SCHEMA.items()])
    return pl.concat([typed, judged]), reasons


@settings(max_examples=300, deadline=None)
@given(st.lists(product, min_size=1, max_size=12))
def test_columns_give_the_records_and_reasons_of_the_readable_rules(drawn: list[dict[str, Any]]) -> None:
    rows = [{"id": i + 1, **p, "pageKey": i + 1} for i, p in enumerate(drawn)]
    body = json.dumps({"data": {"products": rows}}).encode()
    try:
        expected, expected_reasons = by_readable_rules(json.loads(body)["data"]["products"])
    except ApiError:
        with pytest.raises(ApiError):  # a shape the models refuse is refused on both paths
            by_columns(body)
        return
    found, reasons = by_columns(body)
    assert found.sort("product_id").equals(expected.sort("product_id"))
    assert reasons == expected_reasons
    page = decode_product_page(body)
    assert page.products is not None
    took_columns = edition_columns(page.products, NO_DATE)[0].height
    event(
        "products on the column path: "
        + ("all" if took_columns == len(rows) else "some" if took_columns else "none")
    )


def test_clean_products_take_the_column_path() -> None:
    """The fast path is the one taken for ordinary products (else the test above proves little)."""
    row = {
        "id": 1,
        "isbn": {"isbn13": VALID},
        "fullTitle": "T",
        "subtitle": None,
        "publicationDate": "2024-05-01",
        "onixPublishingStatusCode": "04",
        "onix21ProductFormCode": "BB",
        "forSaleCountryCodes": ["GB"],
        "notForSaleCountryCodes": [],
        "isForSaleWorldwide": False,
        "salesRightsDescription": None,
        "rowSalesRightsTypeCode": None,
        "salesEmbargoDate": None,
        "imprint": {"name": "M"},
        "projectStageName": None,
        "updatedAt": None,
        "todos": [{"name": "Cover", "milestone": True, "dueDate": None, "doneDate": None}],
        "work": {"id": 3, "title": "W", "subtitle": "S", "contributions": []},
        "pageKey": 1,
    }
    page = decode_product_page(json.dumps({"data": {"products": [row]}}).encode())
    assert page.products is not None
    records, rest = edition_columns(page.products, NO_DATE)
    assert records.height == 1 and rest.height == 0
    assert records["subtitle"].to_list() == ["S"] and records["product_form"].to_list() == ["BB"]


def test_graphql_errors_and_missing_data_are_read_as_such() -> None:
    page = decode_product_page(b'{"data": null, "errors": [{"message": "boom"}]}')
    assert page.products is None and page.errors == ["boom"]
    empty = decode_product_page(b'{"data": {"products": []}}')
    assert empty.products is not None and empty.products.height == 0 and empty.errors == []
