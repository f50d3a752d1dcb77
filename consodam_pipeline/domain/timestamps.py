"""One timestamp text form for both systems: UTC, millisecond precision, `Z` suffix.

A fixed width keeps text order equal to time order (the sandboxes filter on text), and milliseconds
let two edits in the same second tell apart.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

DAY = r"^\d{4}-\d{2}-\d{2}$"


def format_ts(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def now_ts() -> str:
    return format_ts(datetime.now(UTC))


def utcnow() -> datetime:
    """Now, aware, in UTC: the one clock every part of consodam reads."""
    return datetime.now(UTC)


def to_naive_utc(moment: datetime) -> datetime:
    """The lineage store keeps naive UTC (SQLite has no zones): an aware moment converted, a naive one kept."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def is_iso_day(column: str) -> pl.Expr:
    """A vectorised polars test: the column holds a real calendar day written YYYY-MM-DD."""
    import polars as pl  # here, so parsing one timestamp does not load polars

    text = pl.col(column)
    return text.str.contains(DAY) & text.str.to_date("%Y-%m-%d", strict=False).is_not_null()
