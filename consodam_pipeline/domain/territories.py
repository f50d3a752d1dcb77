"""Territories: ISO 3166-1 countries, the WORLD region, and ONIX 3.0 sales-rights semantics.

A territory set is a 249-bit mask over the ISO country list (sorted, so bit i is COUNTRY_CODES[i]).
Scalars use a Python int; frames carry the mask as four UInt64 columns so union, intersection,
difference and "does it cover X" are single vectorised bitwise operations, never loops per row.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import polars as pl

from consodam_pipeline.domain.onix import SalesRightsType

# ISO 3166-1 alpha-2, all 249 officially assigned codes (checked against pycountry in the tests).
_ISO_3166_1 = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW
    BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI
    FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN
    IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME
    MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF
    PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
    SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE
    YT ZA ZM ZW
"""
COUNTRY_CODES: tuple[str, ...] = tuple(_ISO_3166_1.split())
WORLD = "WORLD"
WORDS = 4  # 4 × 64 bits ≥ 249 countries
_BIT = {code: i for i, code in enumerate(COUNTRY_CODES)}
_ALL_MASK = (1 << len(COUNTRY_CODES)) - 1
_WORD_MASK = (1 << 64) - 1


class UnknownTerritoryError(ValueError):
    def __init__(self, code: object, hint: str = "") -> None:
        self.code = code
        detail = f"; {hint}" if hint else ""
        super().__init__(f"unknown territory code {code!r} (expected ISO 3166-1 alpha-2 or WORLD){detail}")


def country_bit(code: str) -> int:
    try:
        return _BIT[code]
    except KeyError:
        hint = "rest of world is ROWSalesRightsType in ONIX 3.0, not a region" if code == "ROW" else ""
        raise UnknownTerritoryError(code, hint) from None


@dataclass(frozen=True, slots=True)
class TerritorySet:
    mask: int = 0

    @classmethod
    def of(cls, codes: Iterable[str]) -> TerritorySet:
        mask = 0
        for code in codes:
            if code == WORLD:
                mask = _ALL_MASK
            else:
                mask |= 1 << country_bit(code)
        return cls(mask)

    @classmethod
    def parse(cls, text: str | None) -> TerritorySet:
        """Space-separated codes as ONIX carries them (`CountriesIncluded`)."""
        return cls.of((text or "").split())

    @classmethod
    def world(cls) -> TerritorySet:
        return cls(_ALL_MASK)

    def __or__(self, other: TerritorySet) -> TerritorySet:
        return TerritorySet(self.mask | other.mask)

    def __and__(self, other: TerritorySet) -> TerritorySet:
        return TerritorySet(self.mask & other.mask)

    def __sub__(self, other: TerritorySet) -> TerritorySet:
        return TerritorySet(self.mask & ~other.mask)

    def complement(self) -> TerritorySet:
        return TerritorySet(_ALL_MASK & ~self.mask)

    def covers(self, code: str) -> bool:
        return bool(self.mask >> country_bit(code) & 1)

    def is_empty(self) -> bool:
        return self.mask == 0

    def is_world(self) -> bool:
        return self.mask == _ALL_MASK

    def __len__(self) -> int:
        return self.mask.bit_count()

    def codes(self) -> list[str]:
        return [c for i, c in enumerate(COUNTRY_CODES) if self.mask >> i & 1]

    def words(self) -> tuple[int, int, int, int]:
        m = self.mask
        return (m & _WORD_MASK, m >> 64 & _WORD_MASK, m >> 128 & _WORD_MASK, m >> 192 & _WORD_MASK)

    @classmethod
    def from_words(cls, words: Sequence[int]) -> TerritorySet:
        return cls(sum(int(w) << (64 * i) for i, w in enumerate(words)))

    def describe(self) -> str:
        if self.is_world():
            return WORLD
        if len(self) > len(COUNTRY_CODES) // 2:
            return f"{WORLD} excl. {' '.join(self.complement().codes())}"
        return " ".join(self.codes())


@dataclass(frozen=True, slots=True)
class SalesRightsBlock:
    """One ONIX <SalesRights>: a type and a territory (countries and/or WORLD, optional exclusions)."""

    rights_type: SalesRightsType
    countries_included: tuple[str, ...] = ()
    regions_included: tuple[str, ...] = ()
    countries_excluded: tuple[str, ...] = ()

    def territory(self) -> TerritorySet:
        for region in self.regions_included:
            if region != WORLD:
                raise UnknownTerritoryError(region, "only the WORLD region is supported")
        if self.countries_excluded and WORLD not in self.regions_included:
            raise ValueError("CountriesExcluded is only allowed with RegionsIncluded WORLD (ONIX 3.0)")
        return TerritorySet.of(self.countries_included + self.regions_included) - TerritorySet.of(
            self.countries_excluded
        )


@dataclass(frozen=True, slots=True)
class SalesRights:
    """Where an edition may be sold: the resolved for-sale and not-for-sale sets."""

    for_sale: TerritorySet
    not_for_sale: TerritorySet

    @property
    def unstated(self) -> TerritorySet:
        return (self.for_sale | self.not_for_sale).complement()


def resolve_sales_rights(
    blocks: Sequence[SalesRightsBlock], row_rights_type: SalesRightsType | None = None
) -> SalesRights:
    """ONIX 3.0 semantics: explicit blocks first; ROWSalesRightsType covers every country not named.

    A country named both for sale and not for sale is treated as not for sale (the safe reading).
    ROW type 00 ("unknown") grants nothing: recipients must not assume rights.
    """
    for_sale = TerritorySet()
    not_for_sale = TerritorySet()
    for block in blocks:
        territory = block.territory()
        if block.rights_type.is_for_sale:
            for_sale |= territory
        elif block.rights_type is not SalesRightsType.UNKNOWN:
            not_for_sale |= territory
    rest = (for_sale | not_for_sale).complement()
    if row_rights_type is not None and row_rights_type.is_for_sale:
        for_sale |= rest
    elif row_rights_type is not None and row_rights_type is not SalesRightsType.UNKNOWN:
        not_for_sale |= rest
    return SalesRights(for_sale=for_sale - not_for_sale, not_for_sale=not_for_sale)


# ---- frame helpers: a territory set as four UInt64 columns named f"{prefix}_w0" .. f"{prefix}_w3" ----


def word_columns(prefix: str) -> list[str]:
    return [f"{prefix}_w{i}" for i in range(WORDS)]


def territory_columns(prefix: str, sets: Sequence[TerritorySet]) -> dict[str, pl.Series]:
    words = [s.words() for s in sets]
    return {
        name: pl.Series(name, [w[i] for w in words], dtype=pl.UInt64)
        for i, name in enumerate(word_columns(prefix))
    }


def _combine(a: str, b: str, out: str, op: str) -> list[pl.Expr]:
    exprs = []
    for ca, cb, co in zip(word_columns(a), word_columns(b), word_columns(out), strict=True):
        left, right = pl.col(ca), pl.col(cb)
        if op == "or":
            exprs.append((left | right).alias(co))
        elif op == "and":
            exprs.append((left & right).alias(co))
        else:
            exprs.append((left & ~right).alias(co))
    return exprs


def union_exprs(a: str, b: str, out: str) -> list[pl.Expr]:
    return _combine(a, b, out, "or")


def intersection_exprs(a: str, b: str, out: str) -> list[pl.Expr]:
    return _combine(a, b, out, "and")


def difference_exprs(a: str, b: str, out: str) -> list[pl.Expr]:
    return _combine(a, b, out, "andnot")


def covers_expr(prefix: str, code: str) -> pl.Expr:
    bit = country_bit(code)
    word, offset = divmod(bit, 64)
    return (pl.col(f"{prefix}_w{word}") & pl.lit(1 << offset, dtype=pl.UInt64)) != 0


def is_empty_expr(prefix: str) -> pl.Expr:
    return pl.all_horizontal(pl.col(c) == 0 for c in word_columns(prefix))


def country_count_expr(prefix: str) -> pl.Expr:
    return pl.sum_horizontal(pl.col(c).bitwise_count_ones().cast(pl.Int32) for c in word_columns(prefix))


def _code_table() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "code": list(COUNTRY_CODES),
            "word": [i // 64 for i in range(len(COUNTRY_CODES))],
            "bit": pl.Series([1 << (i % 64) for i in range(len(COUNTRY_CODES))], dtype=pl.UInt64),
        }
    )


def masks_from_code_lists(frame: pl.DataFrame, column: str, prefix: str) -> pl.DataFrame:
    """Add the four mask words of a list-of-codes column (WORLD = every country), vectorised.

    Unknown codes are ignored here: ingest quarantines them before a frame gets this far.
    """
    indexed = frame.select(
        pl.int_range(pl.len(), dtype=pl.UInt32).alias("_row"), pl.col(column).cast(pl.List(pl.String))
    )
    exploded = indexed.explode(column).drop_nulls(column)
    world = exploded.filter(pl.col(column) == WORLD).select("_row").unique()
    bits = (
        exploded.join(_code_table(), left_on=column, right_on="code")
        .group_by("_row", "word")
        .agg(pl.col("bit").sum())
    )
    words = indexed.select("_row")
    for i in range(WORDS):
        part = bits.filter(pl.col("word") == i).select("_row", pl.col("bit").alias(f"{prefix}_w{i}"))
        words = words.join(part, on="_row", how="left")
    full = TerritorySet.world().words()
    words = words.with_columns(
        [
            pl.when(pl.col("_row").is_in(world["_row"].implode()))
            .then(pl.lit(full[i], dtype=pl.UInt64))
            .otherwise(pl.col(f"{prefix}_w{i}").fill_null(0))
            .alias(f"{prefix}_w{i}")
            for i in range(WORDS)
        ]
    )
    return pl.concat([frame, words.sort("_row").drop("_row")], how="horizontal")


def complement_exprs(source: str, out: str) -> list[pl.Expr]:
    full = TerritorySet.world().words()
    return [
        (pl.lit(full[i], dtype=pl.UInt64) & ~pl.col(f"{source}_w{i}")).alias(f"{out}_w{i}")
        for i in range(WORDS)
    ]
