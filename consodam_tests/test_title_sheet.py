"""The F6 domain: a title sheet is valid ONIX 3.0 for any edition and says what the edition is; the launch
window's column-wise selection agrees with its one-edition rule."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import onixcheck
import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consodam_pipeline.derived.launch_plan import in_window
from consodam_pipeline.domain.launch import LaunchWindow, collection_name, launched
from consodam_pipeline.domain.title_sheet import FILE_FORMATS, SheetEdition, SheetResource, read, render

COUNTRIES = ["GB", "US", "DE", "FR", "AU", "NZ", "IE", "CA"]
text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")),
    min_size=1,
    max_size=40,
).filter(lambda s: s.strip() == s and s != "")
resources = st.builds(
    SheetResource,
    content_type=st.sampled_from(["01", "02", "07", "13", "15"]),
    mode=st.sampled_from(["03", "04", "05"]),
    url=st.from_regex(r"https://dam\.example/otmmapi/v6/assets/[a-f0-9]{8}/contents", fullmatch=True),
    mime_type=st.none() | st.sampled_from(sorted(FILE_FORMATS)),
    width_px=st.none() | st.integers(1, 20000),
    height_px=st.none() | st.integers(1, 20000),
    filename=st.none() | text,
)
editions = st.builds(
    SheetEdition,
    record_reference=st.from_regex(r"consodam\.97[89][0-9]{10}", fullmatch=True),
    isbn13=st.from_regex(r"97[89][0-9]{10}", fullmatch=True),
    title=text,
    subtitle=st.none() | text,
    product_form=st.sampled_from(["BB", "BC", "EA", "AJ"]),
    imprint=st.none() | text,
    publisher=text,
    publishing_status=st.sampled_from(["02", "04", "07"]),
    publication_date=st.none() | st.dates(date(1990, 1, 1), date(2040, 12, 31)),
    contributors=st.lists(st.tuples(text, st.sampled_from([None, "A01", "B01", "A12"])), max_size=3),
    for_sale_worldwide=st.booleans(),
    for_sale=st.lists(st.sampled_from(COUNTRIES), unique=True, max_size=3),
    not_for_sale=st.lists(st.sampled_from(COUNTRIES), unique=True, max_size=3),
    resources=st.lists(resources, max_size=4).map(tuple),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edition=editions)
def test_every_title_sheet_is_valid_onix_and_says_what_the_edition_is(
    edition: SheetEdition, tmp_path: Path
) -> None:
    xml = render(edition, "Harbour Press")
    path = tmp_path / "sheet.xml"
    path.write_text(xml, encoding="utf-8")
    assert onixcheck.validate(str(path)) == []
    assert render(edition, "Harbour Press") == xml  # the same data, the same sheet: no needless version
    said = read(xml)
    assert said["isbn13"] == edition.isbn13 and said["title"] == edition.title
    assert said["imprint"] == edition.imprint and said["publishing_status"] == edition.publishing_status
    assert said["publication_date"] == (edition.publication_date and f"{edition.publication_date:%Y%m%d}")
    assert said["contributors"] == [name for name, _ in edition.contributors]
    assert said["resources"] == [(r.content_type, r.url) for r in edition.resources]


def test_a_sheet_lists_sales_rights_as_the_edition_has_them() -> None:
    base = SheetEdition("r", "9780000000002", "T", None, "BB", "Imprint", "P", "04", date(2027, 2, 1))
    world = read(
        render(base.__class__(**{**base.__dict__, "for_sale_worldwide": True, "not_for_sale": ["US"]}), "P")
    )
    assert world["sales_rights"] == [
        "for sale WORLD excluding US"
    ]  # ONIX: RegionsIncluded, CountriesExcluded
    listed = read(
        render(base.__class__(**{**base.__dict__, "for_sale": ["GB", "IE"], "not_for_sale": ["US"]}), "P")
    )
    assert listed["sales_rights"] == ["for sale GB IE", "not for sale US"]
    assert read(render(base, "P"))["sales_rights"] == []


statuses = st.sampled_from(["01", "02", "04", "05", "07", "11", "16", None])


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(st.tuples(st.none() | st.dates(date(2026, 1, 1), date(2028, 1, 1)), statuses), max_size=30),
    before=st.integers(0, 200),
    after=st.integers(0, 60),
    today=st.dates(date(2026, 6, 1), date(2027, 6, 1)),
)
def test_the_launch_window_column_wise_agrees_with_its_rule(
    rows: list[tuple[date | None, str | None]], before: int, after: int, today: date
) -> None:
    window = LaunchWindow(days_before=before, days_after=after)
    editions = pl.DataFrame(
        {
            "product_id": list(range(len(rows))),
            "publication_date": [d for d, _ in rows],
            "publishing_status": [s for _, s in rows],
            "imprint": ["Harbour Press"] * len(rows),
        },
        schema={
            "product_id": pl.Int64,
            "publication_date": pl.Date,
            "publishing_status": pl.String,
            "imprint": pl.String,
        },
    )
    expected = [i for i, (d, s) in enumerate(rows) if window.contains(d, today) and launched(s)]
    chosen = in_window(editions, window, today)
    assert chosen["product_id"].to_list() == expected
    assert chosen["collection"].to_list() == [collection_name(rows[i][0], "Harbour Press") for i in expected]  # type: ignore[arg-type]


def test_the_window_edges() -> None:
    window = LaunchWindow(days_before=90, days_after=30)
    day = date(2027, 3, 1)
    assert window.contains(day + timedelta(days=90), day) and not window.contains(
        day + timedelta(days=91), day
    )
    assert window.contains(day - timedelta(days=30), day) and not window.contains(
        day - timedelta(days=31), day
    )
    assert not window.contains(None, day)
    assert collection_name(date(2027, 2, 14), None) == "Launch 2027-02 · No imprint"
