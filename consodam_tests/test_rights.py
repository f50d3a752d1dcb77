"""Rights: property tests of the rules against ONIX semantics, and the flow against the sandboxes."""

from datetime import date

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from consodam_pipeline.derived.rights_matrix import rights_matrix
from consodam_pipeline.derived.rights_reference import embargo_breaches, violations
from consodam_pipeline.domain.territories import COUNTRY_CODES, TerritorySet

COUNTRIES = st.sampled_from(["GB", "IE", "US", "CA", "AU", "NZ", "DE", "FR", "CN", "IN", "ZA", "JP"])
DAYS = st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31))


@st.composite
def edition(draw: st.DrawFn) -> dict[str, object]:
    worldwide = draw(st.booleans())
    return {
        "product_id": 1,
        "isbn13": "9780306406157",
        "work_id": 7,
        "publication_date": draw(DAYS),
        "for_sale_worldwide": worldwide,
        "for_sale_countries": [] if worldwide else sorted(set(draw(st.lists(COUNTRIES, max_size=5)))),
        "not_for_sale_countries": sorted(set(draw(st.lists(COUNTRIES, max_size=3)))),
        "row_sales_rights_type": None
        if worldwide
        else draw(st.sampled_from([None, "00", "01", "02", "03", "06"])),
        "publishing_status": draw(st.sampled_from(["02", "04", "04", "06", "07", "01", "11", "15", "17"])),
        "embargo_date": draw(st.one_of(st.none(), DAYS)),
    }


@st.composite
def asset(draw: st.DrawFn) -> dict[str, object]:
    start = draw(st.one_of(st.none(), DAYS))
    end = draw(st.one_of(st.none(), DAYS))
    return {
        "asset_id": "a" * 40,
        "original_asset_id": "a" * 40,
        "version": 1,
        "role": "contributor_picture",
        "isbn13": draw(st.sampled_from([None, "9780306406157"])),
        "work_id": 7,
        "approval_status": draw(st.sampled_from(["approved", "approved", "in_review", "rejected", "draft"])),
        "license_from": start,
        "license_until": end,
        "orphan_tag": False,
    }


EDITION_TYPES: dict[str, pl.DataType | type[pl.DataType]] = {
    "for_sale_countries": pl.List(pl.String),
    "not_for_sale_countries": pl.List(pl.String),
    "row_sales_rights_type": pl.String,
    "embargo_date": pl.Date,
    "isbn13": pl.String,
}
ASSET_TYPES: dict[str, pl.DataType | type[pl.DataType]] = {
    "license_from": pl.Date,
    "license_until": pl.Date,
    "isbn13": pl.String,
}


def frames(e: dict[str, object], a: dict[str, object]) -> tuple[pl.DataFrame, pl.DataFrame]:
    return pl.DataFrame([e], schema_overrides=EDITION_TYPES), pl.DataFrame([a], schema_overrides=ASSET_TYPES)


def onix_for_sale(e: dict[str, object], country: str) -> bool:
    """ONIX 3.0 read directly: WORLD minus exclusions; or named countries plus, for a for-sale
    ROWSalesRightsType, every country not named; not-for-sale always wins."""
    nfs = set(e["not_for_sale_countries"])  # type: ignore[call-overload]
    fs = set(e["for_sale_countries"])  # type: ignore[call-overload]
    if country in nfs:
        return False
    if e["for_sale_worldwide"]:
        return True
    return country in fs or (e["row_sales_rights_type"] in ("01", "02") and country not in fs | nfs)


@settings(max_examples=300, deadline=None)
@given(edition(), asset(), st.sampled_from(COUNTRY_CODES), DAYS)
def test_no_grant_exposes_what_the_rules_deny(
    e: dict[str, object], a: dict[str, object], country: str, day: date
) -> None:
    editions, inventory = frames(e, a)
    matrix = rights_matrix(editions, inventory)
    assert matrix.height == 1
    row = matrix.row(0, named=True)
    seen = (
        TerritorySet.from_words([row[f"grant_w{i}"] for i in range(4)]).covers(country)
        and (row["grant_from"] is None or day >= row["grant_from"])
        and (row["grant_until"] is None or day <= row["grant_until"])
    )
    if seen:
        assert a["approval_status"] == "approved"
        assert onix_for_sale(e, country), "granted where ONIX says not for sale"
        assert e["publishing_status"] not in ("01", "05", "11", "15", "16", "17")
        assert e["embargo_date"] is None or day >= e["embargo_date"]  # type: ignore[operator]
        assert a["license_from"] is None or day >= a["license_from"]  # type: ignore[operator]
        assert a["license_until"] is None or day <= a["license_until"]  # type: ignore[operator]
    if row["downloadable"]:
        assert row["visible"] and e["publishing_status"] not in ("06", "07", "08")
    assert violations(matrix, editions, inventory, sample=10) == []
    assert embargo_breaches(matrix).height == 0


def test_world_exclusion_and_rest_of_world_cases() -> None:
    base = {
        "product_id": 1,
        "isbn13": "9780306406157",
        "work_id": 7,
        "publication_date": date(2024, 1, 1),
        "publishing_status": "04",
        "embargo_date": None,
    }
    photo = {
        "asset_id": "b" * 40,
        "original_asset_id": "b" * 40,
        "version": 1,
        "role": "contributor_picture",
        "isbn13": None,
        "work_id": 7,
        "approval_status": "approved",
        "license_from": None,
        "license_until": None,
        "orphan_tag": False,
    }
    cases = [
        (
            {
                "for_sale_worldwide": True,
                "for_sale_countries": [],
                "not_for_sale_countries": ["US", "CA"],
                "row_sales_rights_type": None,
            },
            len(COUNTRY_CODES) - 2,
            "US",
            False,
        ),
        (
            {
                "for_sale_worldwide": False,
                "for_sale_countries": ["GB", "IE"],
                "not_for_sale_countries": [],
                "row_sales_rights_type": None,
            },
            2,
            "FR",
            False,
        ),
        (
            {
                "for_sale_worldwide": False,
                "for_sale_countries": ["GB", "IE"],
                "not_for_sale_countries": ["US"],
                "row_sales_rights_type": "02",
            },
            len(COUNTRY_CODES) - 1,
            "FR",
            True,
        ),
        (
            {
                "for_sale_worldwide": False,
                "for_sale_countries": ["GB"],
                "not_for_sale_countries": [],
                "row_sales_rights_type": "00",
            },
            1,
            "FR",
            False,
        ),
    ]
    for rights, count, probe, covered in cases:
        row = rights_matrix(*frames({**base, **rights}, photo)).row(0, named=True)
        assert row["countries"] == count
        assert TerritorySet.from_words([row[f"grant_w{i}"] for i in range(4)]).covers(probe) is covered


def test_only_the_newest_approved_version_is_granted() -> None:
    e = {
        "product_id": 1,
        "isbn13": "9780306406157",
        "work_id": 7,
        "publication_date": date(2024, 1, 1),
        "for_sale_worldwide": True,
        "for_sale_countries": [],
        "not_for_sale_countries": [],
        "row_sales_rights_type": None,
        "publishing_status": "04",
        "embargo_date": None,
    }
    versions = pl.DataFrame(
        [
            {
                "asset_id": f"{v}" * 40,
                "original_asset_id": "1" * 40,
                "version": v,
                "role": "front_cover",
                "isbn13": "9780306406157",
                "work_id": 7,
                "approval_status": status,
                "license_from": None,
                "license_until": None,
                "orphan_tag": False,
            }
            for v, status in ((1, "approved"), (2, "approved"), (3, "in_review"))
        ],
        schema_overrides={"license_from": pl.Date, "license_until": pl.Date},
    )
    matrix = rights_matrix(pl.DataFrame([e], schema_overrides=EDITION_TYPES), versions).sort("version")
    assert matrix["visible"].to_list() == [False, True, False]
    assert matrix["denied_reason"].to_list() == [
        "superseded by a newer approved version",
        None,
        "not approved",
    ]
