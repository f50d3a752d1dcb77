"""One timestamp text form for both systems: UTC, millisecond precision, `Z` suffix.

A fixed width keeps text order equal to time order (the sandboxes filter on text), and milliseconds
let two edits in the same second tell apart.
"""

from datetime import UTC, datetime


def format_ts(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def now_ts() -> str:
    return format_ts(datetime.now(UTC))
