"""ISBN-10 / ISBN-13 validation, normalisation and conversion.

Check-digit arithmetic is hand-written because it runs on every edition of a catalog (hundreds of
thousands of calls) and must raise our own error type; hyphenation needs the ISBN agency's range
table, so it is delegated to python-stdnum, which ships and maintains that table.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

_SEPARATORS = re.compile(r"[\s\-‐‑‒–—]")
_PREFIX = re.compile(r"^ISBN(?:-1[03])?:?", re.IGNORECASE)
BOOKLAND_PREFIXES = ("978", "979")


class InvalidISBNError(ValueError):
    """An ISBN that cannot be accepted; names the value and the reason."""

    def __init__(self, value: object, reason: str) -> None:
        self.value = value
        self.reason = reason
        super().__init__(f"invalid ISBN {value!r}: {reason}")


def isbn13_check_digit(first12: str) -> str:
    digits = list(map(int, first12))  # weights 1, 3, 1, 3, …: every edition read passes here
    total = sum(digits[0::2]) + 3 * sum(digits[1::2])
    return str((10 - total % 10) % 10)


def isbn10_check_digit(first9: str) -> str:
    total = sum(int(d) * (10 - i) for i, d in enumerate(first9))
    check = (11 - total % 11) % 11
    return "X" if check == 10 else str(check)


def _compact(raw: object) -> str:
    if not isinstance(raw, str):
        raise InvalidISBNError(raw, "not a string")
    text = _PREFIX.sub("", raw.strip()).strip()
    return _SEPARATORS.sub("", text).upper()


def _validate13(raw: object, digits: str) -> str:
    if not digits.isdigit():
        raise InvalidISBNError(raw, "ISBN-13 must be 13 digits (no 'X')")
    if digits[:3] not in BOOKLAND_PREFIXES:
        raise InvalidISBNError(raw, f"ISBN-13 must start with 978 or 979, not {digits[:3]}")
    expected = isbn13_check_digit(digits[:12])
    if digits[12] != expected:
        raise InvalidISBNError(raw, f"bad check digit {digits[12]}, expected {expected}")
    return digits


def _validate10(raw: object, chars: str) -> str:
    if not chars[:9].isdigit() or not (chars[9].isdigit() or chars[9] == "X"):
        raise InvalidISBNError(raw, "ISBN-10 must be 9 digits then a digit or 'X'")
    expected = isbn10_check_digit(chars[:9])
    if chars[9] != expected:
        raise InvalidISBNError(raw, f"bad check digit {chars[9]}, expected {expected}")
    return chars


def normalize_isbn(raw: object) -> str:
    """Any accepted form (ISBN-10 or -13, hyphens, spaces, 'ISBN' prefix) → the 13-digit ISBN."""
    compact = _compact(raw)
    if len(compact) == 13:
        return _validate13(raw, compact)
    if len(compact) == 10:
        return isbn10_to_isbn13(_validate10(raw, compact))
    raise InvalidISBNError(raw, f"has {len(compact)} characters; an ISBN has 10 or 13")


def is_valid_isbn(raw: object) -> bool:
    try:
        normalize_isbn(raw)
    except InvalidISBNError:
        return False
    return True


def isbn10_to_isbn13(isbn10: str) -> str:
    chars = _validate10(isbn10, _compact(isbn10))
    core = "978" + chars[:9]
    return core + isbn13_check_digit(core)


def isbn13_to_isbn10(isbn13: str) -> str:
    """Only 978 ISBNs have an ISBN-10 form; 979 ones raise."""
    digits = _validate13(isbn13, _compact(isbn13))
    if not digits.startswith("978"):
        raise InvalidISBNError(isbn13, "only 978-prefixed ISBN-13s have an ISBN-10 form")
    core = digits[3:12]
    return core + isbn10_check_digit(core)


def hyphenate(raw: object) -> str:
    """Hyphenated display form from the ISBN agency's ranges (falls back to EAN-prefix split)."""
    from stdnum import isbn as stdnum_isbn

    digits = normalize_isbn(raw)
    return str(stdnum_isbn.format(digits))


def make_isbn13(core9: str, prefix: str = "978") -> str:
    """Complete a 978/979 prefix and 9-digit core with its check digit (used by the catalog generator)."""
    first12 = prefix + core9
    return first12 + isbn13_check_digit(first12)


def isbn13_valid_expr(column: str) -> pl.Expr:
    """A vectorised polars test: the column holds a valid 13-digit ISBN-13 (no per-row Python)."""
    import polars as pl  # here, so a lookup of one ISBN does not load polars

    col = pl.col(column)
    digits = [col.str.slice(i, 1).cast(pl.Int32, strict=False) for i in range(13)]
    weighted = pl.sum_horizontal(d * (3 if i % 2 else 1) for i, d in enumerate(digits[:12]))
    check_ok = ((10 - weighted % 10) % 10) == digits[12]
    shape_ok = col.str.contains(r"^97[89]\d{10}$")
    return (shape_ok & check_ok).fill_null(False)
