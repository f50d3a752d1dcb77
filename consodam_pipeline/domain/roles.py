"""Asset roles: what a DAM asset is for a title, in ONIX terms (List 158 content type + List 159 mode)."""

from __future__ import annotations

from enum import StrEnum

from consodam_pipeline.domain.onix import ResourceContentType, ResourceMode


class AssetRole(StrEnum):
    FRONT_COVER = "front_cover"
    BACK_COVER = "back_cover"
    CONTRIBUTOR_PICTURE = "contributor_picture"
    JACKET_COPY = "jacket_copy"
    SAMPLE_CONTENT = "sample_content"
    AUDIO_SAMPLE = "audio_sample"
    PROMOTIONAL_IMAGE = "promotional_image"
    FULL_COVER = "full_cover"  # print-ready cover (front, back, spine, flaps)
    FULL_CONTENT = "full_content"  # the whole book as text: interior PDF, EPUB
    FULL_CONTENT_AUDIO = "full_content_audio"  # the whole audiobook
    TITLE_SHEET = "title_sheet"  # consodam's ONIX title sheet of an edition (F6); no List 158 type of its own

    @property
    def content_type(self) -> ResourceContentType:
        return _ONIX[self][0]

    @property
    def mode(self) -> ResourceMode:
        return _ONIX[self][1]

    @classmethod
    def with_onix_codes(cls) -> list[AssetRole]:
        """The roles that are ONIX supporting resources (List 158 content type and List 159 mode)."""
        return [role for role in cls if role in _ONIX]

    @property
    def production_master(self) -> bool:
        """A production file (F5): referenced in the production workflow, never shared with the trade,
        never linked to the title record as marketing material."""
        return self in PRODUCTION_MASTERS

    @property
    def edition_specific(self) -> bool:
        """Covers belong to one edition (one ISBN); the rest are shared by every edition of a work."""
        return self in (AssetRole.FRONT_COVER, AssetRole.BACK_COVER)

    @classmethod
    def from_onix(cls, content_type: str, mode: str) -> AssetRole:
        for role, (ct, rm) in _ONIX.items():
            if ct == content_type and rm == mode:
                return role
        raise ValueError(f"no asset role for ONIX content type {content_type!r} with mode {mode!r}")


_ONIX: dict[AssetRole, tuple[ResourceContentType, ResourceMode]] = {
    AssetRole.FRONT_COVER: (ResourceContentType.FRONT_COVER, ResourceMode.IMAGE),
    AssetRole.BACK_COVER: (ResourceContentType.BACK_COVER, ResourceMode.IMAGE),
    AssetRole.CONTRIBUTOR_PICTURE: (ResourceContentType.CONTRIBUTOR_PICTURE, ResourceMode.IMAGE),
    AssetRole.JACKET_COPY: (ResourceContentType.DESCRIPTION, ResourceMode.TEXT),
    AssetRole.SAMPLE_CONTENT: (ResourceContentType.SAMPLE_CONTENT, ResourceMode.TEXT),
    AssetRole.AUDIO_SAMPLE: (ResourceContentType.SAMPLE_CONTENT, ResourceMode.AUDIO),
    AssetRole.PROMOTIONAL_IMAGE: (ResourceContentType.ONLINE_ADVERTISEMENT_PANEL, ResourceMode.IMAGE),
    AssetRole.FULL_COVER: (ResourceContentType.FULL_COVER, ResourceMode.IMAGE),
    AssetRole.FULL_CONTENT: (ResourceContentType.FULL_CONTENT, ResourceMode.TEXT),
    AssetRole.FULL_CONTENT_AUDIO: (ResourceContentType.FULL_CONTENT, ResourceMode.AUDIO),
}
PRODUCTION_MASTERS = frozenset({AssetRole.FULL_COVER, AssetRole.FULL_CONTENT, AssetRole.FULL_CONTENT_AUDIO})
# What may be shared with the trade and linked to a title record: not production masters, not title sheets.
MARKETING_ROLES = [
    r.value for r in AssetRole if r not in PRODUCTION_MASTERS and r is not AssetRole.TITLE_SHEET
]


class ApprovalStatus(StrEnum):
    """DAM approval states (a sandbox convention: OTMM's public REST record has no approval resource)."""

    DRAFT = "draft"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    REJECTED = "rejected"
