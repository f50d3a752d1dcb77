import polars as pl
import pycountry
import pytest
from hypothesis import given
from hypothesis import strategies as st

from consodam_pipeline.domain.onix import SalesRightsType
from consodam_pipeline.domain.territories import (
    COUNTRY_CODES,
    SalesRightsBlock,
    TerritorySet,
    UnknownTerritoryError,
    country_count_expr,
    covers_expr,
    difference_exprs,
    intersection_exprs,
    is_empty_expr,
    resolve_sales_rights,
    territory_columns,
    union_exprs,
)

T = SalesRightsType
codes = st.lists(st.sampled_from(COUNTRY_CODES), max_size=30)


def test_country_list_is_iso_3166_1() -> None:
    assert set(COUNTRY_CODES) == {c.alpha_2 for c in pycountry.countries}
    assert list(COUNTRY_CODES) == sorted(COUNTRY_CODES)


@pytest.mark.parametrize("code", ["XX", "UK", "EU", "ROW", "gb", ""])
def test_unknown_codes_raise(code: str) -> None:
    with pytest.raises(UnknownTerritoryError, match="unknown territory code"):
        TerritorySet.of([code])


def test_row_literal_points_to_onix_rule() -> None:
    with pytest.raises(UnknownTerritoryError, match="ROWSalesRightsType"):
        TerritorySet.of(["ROW"])


@given(codes, codes, st.sampled_from(COUNTRY_CODES))
def test_set_algebra_matches_python_sets(a: list[str], b: list[str], probe: str) -> None:
    sa, sb = TerritorySet.of(a), TerritorySet.of(b)
    assert set((sa | sb).codes()) == set(a) | set(b)
    assert set((sa & sb).codes()) == set(a) & set(b)
    assert set((sa - sb).codes()) == set(a) - set(b)
    assert (sa | sb).covers(probe) == (probe in set(a) | set(b))
    assert TerritorySet.from_words(sa.words()) == sa
    assert set(sa.complement().codes()) == set(COUNTRY_CODES) - set(a)


@given(st.lists(st.tuples(codes, codes), min_size=1, max_size=20), st.sampled_from(COUNTRY_CODES))
def test_frame_algebra_matches_scalar(pairs: list[tuple[list[str], list[str]]], probe: str) -> None:
    a_sets = [TerritorySet.of(a) for a, _ in pairs]
    b_sets = [TerritorySet.of(b) for _, b in pairs]
    frame = pl.DataFrame({**territory_columns("a", a_sets), **territory_columns("b", b_sets)})
    out = frame.select(
        *union_exprs("a", "b", "u"),
        *intersection_exprs("a", "b", "i"),
        *difference_exprs("a", "b", "d"),
        covers_expr("a", probe).alias("covers"),
        country_count_expr("a").alias("n"),
        is_empty_expr("a").alias("e"),
    )
    for row, a, b in zip(out.iter_rows(named=True), a_sets, b_sets, strict=True):
        assert TerritorySet.from_words([row[f"u_w{i}"] for i in range(4)]) == a | b
        assert TerritorySet.from_words([row[f"i_w{i}"] for i in range(4)]) == a & b
        assert TerritorySet.from_words([row[f"d_w{i}"] for i in range(4)]) == a - b
        assert row["covers"] == a.covers(probe)
        assert row["n"] == len(a)
        assert row["e"] == a.is_empty()


def test_world_with_exclusions() -> None:
    rights = resolve_sales_rights(
        [SalesRightsBlock(T.FOR_SALE_EXCLUSIVE, regions_included=("WORLD",), countries_excluded=("US", "CA"))]
    )
    assert len(rights.for_sale) == len(COUNTRY_CODES) - 2
    assert not rights.for_sale.covers("US") and rights.for_sale.covers("GB")
    assert rights.for_sale.describe() == "WORLD excl. CA US"


def test_explicit_lists_and_rest_of_world() -> None:
    blocks = [
        SalesRightsBlock(T.FOR_SALE_EXCLUSIVE, countries_included=("GB", "IE")),
        SalesRightsBlock(T.NOT_FOR_SALE, countries_included=("US",)),
    ]
    assert resolve_sales_rights(blocks).for_sale.codes() == ["GB", "IE"]
    with_row = resolve_sales_rights(blocks, T.FOR_SALE_NON_EXCLUSIVE)
    assert with_row.for_sale.covers("FR") and not with_row.for_sale.covers("US")
    assert with_row.unstated.is_empty()
    closed = resolve_sales_rights(blocks, T.NOT_FOR_SALE)
    assert closed.for_sale.codes() == ["GB", "IE"] and closed.not_for_sale.covers("FR")
    unknown = resolve_sales_rights(blocks, T.UNKNOWN)
    assert not unknown.for_sale.covers("FR") and not unknown.not_for_sale.covers("FR")


def test_conflicting_blocks_resolve_to_not_for_sale() -> None:
    rights = resolve_sales_rights(
        [
            SalesRightsBlock(T.FOR_SALE_EXCLUSIVE, regions_included=("WORLD",)),
            SalesRightsBlock(T.NOT_FOR_SALE_NO_RIGHTS, countries_included=("CN",)),
        ]
    )
    assert not rights.for_sale.covers("CN")


def test_onix_territory_rules_are_enforced() -> None:
    with pytest.raises(ValueError, match="only allowed with RegionsIncluded WORLD"):
        SalesRightsBlock(
            T.FOR_SALE_EXCLUSIVE, countries_included=("GB",), countries_excluded=("IE",)
        ).territory()
    with pytest.raises(UnknownTerritoryError, match="only the WORLD region"):
        SalesRightsBlock(T.FOR_SALE_EXCLUSIVE, regions_included=("ECZ",)).territory()
