"""The launch window (F6): which editions are being launched on a day, and where their materials go.

An edition is in the window from `days_before` days before its publication date until `days_after` days
after it, unless it is cancelled or withdrawn (ONIX List 64: 01, 03, 05, 11, 15, 16, 17); a reissue or
special edition counts by its own date. Each launch month and imprint has one DAM collection,
"Launch 2027-02 · Harbour Press": marketing, publicity and sales find an imprint's month in one place.
Pure: dates in, answers out.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

NOT_LAUNCHED = frozenset({"01", "03", "05", "11", "15", "16", "17"})  # cancelled, postponed, withdrawn …
COLLECTION_PREFIX = "Launch "


class LaunchWindow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    days_before: int = Field(default=90, ge=0, le=730)
    days_after: int = Field(default=30, ge=0, le=365)
    incomplete_packages: Literal["publish_flagged", "hold"] = "publish_flagged"
    """An edition whose package (F5) is incomplete: published with what is complete and flagged, or held."""

    def contains(self, publication: date | None, day: date) -> bool:
        return publication is not None and day - timedelta(
            days=self.days_after
        ) <= publication <= day + timedelta(days=self.days_before)

    def entering(self, day: date) -> date:
        """The publication date of editions that enter the window on `day`."""
        return day + timedelta(days=self.days_before)

    def leaving(self, day: date) -> date:
        """The publication date of editions that left the window on `day` (yesterday was their last)."""
        return day - timedelta(days=self.days_after + 1)


def launched(publishing_status: str | None) -> bool:
    return publishing_status not in NOT_LAUNCHED


def collection_name(publication: date, imprint: str | None) -> str:
    return f"{COLLECTION_PREFIX}{publication:%Y-%m} · {imprint or 'No imprint'}"
