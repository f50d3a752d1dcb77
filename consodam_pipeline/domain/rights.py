"""The rights rules, in one place: where and when a DAM asset version may be seen and downloaded.

For an edition and an asset version that belongs to it (a cover tagged with the edition's ISBN, or a
work-wide asset such as an author photo):

1. Only the newest approved version of an asset is granted (a superseded cover stays internal), and
   never one tagged with an ISBN or work no edition has, nor a production master (the full interior,
   EPUB, audio, print-ready cover: production files stay internal).
2. Where: the edition's for-sale territory under ONIX 3.0 semantics (WORLD minus exclusions, explicit
   countries, ROWSalesRightsType for every country not named; not-for-sale wins a conflict).
3. Status: cancelled, no-longer-ours, withdrawn, recalled (List 64: 01, 05, 11, 15, 16, 17) grant
   nothing; out of stock / out of print / inactive (06, 07, 08) may be seen, not downloaded.
4. When: from the later of the asset's license start and the edition's sales embargo date (List 163
   role 02), until the license end; a window that closes before it opens grants nothing.
5. A work-wide asset shared by several editions is granted the union of what each edition grants.

Worked example: a paperback for sale WORLD excl. US CA, embargoed until 2026-03-01, with an approved
author photo licensed 2024-01-01 … 2027-12-31 → visible and downloadable in 247 countries from
2026-03-01 until 2027-12-31. The same photo in version 3, still in review → not granted anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from consodam_pipeline.domain.onix import PublishingStatus
from consodam_pipeline.domain.territories import TerritorySet

PRODUCTION_FILE = "a production file or title sheet, never shared"
NOTHING = frozenset({"01", "05", "11", "15", "16", "17"})
SEE_ONLY = frozenset({"06", "07", "08"})
assert all(PublishingStatus.parse(code) for code in NOTHING | SEE_ONLY)


@dataclass(frozen=True)
class EditionRights:
    for_sale: TerritorySet
    publishing_status: str
    embargo: date | None = None


@dataclass(frozen=True)
class AssetTerms:
    approved: bool
    superseded: bool = False
    license_from: date | None = None
    license_until: date | None = None
    orphan: bool = False
    production_master: bool = False


@dataclass(frozen=True)
class Grant:
    countries: TerritorySet
    start: date | None
    end: date | None
    downloadable: bool
    reason: str | None = None

    @property
    def visible(self) -> bool:
        return not self.countries.is_empty()

    def may_see(self, country: str, day: date) -> bool:
        return (
            self.countries.covers(country)
            and (self.start is None or day >= self.start)
            and (self.end is None or day <= self.end)
        )

    def may_download(self, country: str, day: date) -> bool:
        return self.downloadable and self.may_see(country, day)


def denied(reason: str) -> Grant:
    return Grant(TerritorySet(), None, None, False, reason)


def grant(edition: EditionRights, asset: AssetTerms) -> Grant:
    """The grant of one asset version through one edition (rules 1–4)."""
    if asset.orphan:
        return denied("tagged with an unknown ISBN or work")
    if asset.production_master:
        return denied(PRODUCTION_FILE)
    if not asset.approved:
        return denied("not approved")
    if asset.superseded:
        return denied("superseded by a newer approved version")
    if edition.publishing_status in NOTHING:
        return denied(f"publishing status {edition.publishing_status}")
    if edition.for_sale.is_empty():
        return denied("no sales rights")
    starts = [d for d in (asset.license_from, edition.embargo) if d is not None]
    start = max(starts) if starts else None
    end = asset.license_until
    if start is not None and end is not None and end < start:
        return denied("license ends before the window opens")
    return Grant(edition.for_sale, start, end, edition.publishing_status not in SEE_ONLY)
