import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from consodam_pipeline.domain.isbn import (
    InvalidISBNError,
    hyphenate,
    is_valid_isbn,
    isbn10_to_isbn13,
    isbn13_check_digit,
    isbn13_to_isbn10,
    isbn13_valid_expr,
    make_isbn13,
    normalize_isbn,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("9780306406157", "9780306406157"),
        ("978-0-306-40615-7", "9780306406157"),
        ("ISBN 978 0 306 40615 7", "9780306406157"),
        ("ISBN-13: 978-0-306-40615-7", "9780306406157"),
        ("0-306-40615-2", "9780306406157"),
        ("080442957X", "9780804429573"),
        ("isbn 080442957x", "9780804429573"),
        ("979-10-90636-07-1", "9791090636071"),
    ],
)
def test_normalize_accepts_every_written_form(raw: str, expected: str) -> None:
    assert normalize_isbn(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("9780306406158", "bad check digit 8, expected 7"),
        ("0-306-40615-3", "bad check digit 3, expected 2"),
        ("977030640615X", "13 digits (no 'X')"),
        ("9770306406153", "must start with 978 or 979, not 977"),
        ("97803064061", "has 11 characters"),
        ("", "has 0 characters"),
        ("X306406152", "9 digits then a digit or 'X'"),
    ],
)
def test_invalid_isbn_names_value_and_reason(raw: str, reason: str) -> None:
    with pytest.raises(InvalidISBNError) as info:
        normalize_isbn(raw)
    assert reason in str(info.value)
    assert repr(raw) in str(info.value)
    assert info.value.value == raw


def test_non_string_is_invalid() -> None:
    with pytest.raises(InvalidISBNError, match="not a string"):
        normalize_isbn(9780306406157)
    assert not is_valid_isbn(None)


def test_conversions_both_ways() -> None:
    assert isbn10_to_isbn13("0306406152") == "9780306406157"
    assert isbn13_to_isbn10("9780306406157") == "0306406152"
    assert isbn13_to_isbn10("978-0-8044-2957-3") == "080442957X"
    with pytest.raises(InvalidISBNError, match="only 978-prefixed"):
        isbn13_to_isbn10("9791090636071")


def test_hyphenation_uses_agency_ranges() -> None:
    assert hyphenate("9780306406157") == "978-0-306-40615-7"
    assert hyphenate("0-8044-2957-X") == "978-0-8044-2957-3"
    with pytest.raises(InvalidISBNError):
        hyphenate("9780306406158")


@given(st.text(alphabet="0123456789", min_size=9, max_size=9), st.sampled_from(["978", "979"]))
def test_generated_isbns_validate_and_roundtrip(core: str, prefix: str) -> None:
    isbn = make_isbn13(core, prefix)
    assert normalize_isbn(isbn) == isbn
    if prefix == "978":
        assert isbn10_to_isbn13(isbn13_to_isbn10(isbn)) == isbn
    wrong = isbn[:12] + str((int(isbn[12]) + 1) % 10)
    assert not is_valid_isbn(wrong)


def test_vectorised_check_agrees_with_scalar() -> None:
    values = [
        "9780306406157",
        "9780306406158",
        "9791090636071",
        "97803064061",
        "978030640615X",
        None,
        make_isbn13("123456789"),
        "9770306406153",
    ]
    frame = pl.DataFrame({"isbn": values}, schema={"isbn": pl.String})
    vector = frame.select(isbn13_valid_expr("isbn"))["isbn"].to_list()
    scalar = [v is not None and len(v) == 13 and is_valid_isbn(v) for v in values]
    assert vector == scalar


def test_check_digit_example() -> None:
    assert isbn13_check_digit("978030640615") == "7"
