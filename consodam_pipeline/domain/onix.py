"""ONIX for Books 3.0 code lists the project needs, as enums carrying their descriptions.

Codes were checked against EDItEUR's published lists (issue 58+ as mirrored on onix-codelists.io and
generated enum packages). Only the codes the project reads or writes are encoded; unknown ones raise.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Self, cast


class UnknownCodeError(ValueError):
    def __init__(self, code_list: str, code: object) -> None:
        self.code_list = code_list
        self.code = code
        super().__init__(f"unknown {code_list} code {code!r}")


class CodeList(StrEnum):
    """A str enum whose members are (code, description) pairs; `Member == "BB"` holds."""

    description: str

    def __new__(cls, code: str, description: str) -> Self:
        obj = str.__new__(cls, code)
        obj._value_ = code
        obj.description = description
        return obj

    @classmethod
    def parse(cls, code: Any) -> Self:
        member = cls._value2member_map_.get(str(code).strip()) if code is not None else None
        if member is None:
            raise UnknownCodeError(f"{cls.__name__} (ONIX list {cls.list_number()})", code)
        return cast(Self, member)

    @classmethod
    def list_number(cls) -> int:
        return _LIST_NUMBERS[cls.__name__]


class ProductForm(CodeList):
    """List 150."""

    BOOK = ("BA", "Book")
    HARDBACK = ("BB", "Hardback")
    PAPERBACK = ("BC", "Paperback / softback")
    AUDIO_CD = ("AC", "CD-Audio")
    DOWNLOADABLE_AUDIO = ("AJ", "Downloadable audio file")
    DOWNLOADABLE_AND_ONLINE_AUDIO = ("AN", "Downloadable and online audio file")
    DIGITAL = ("EA", "Digital (delivered electronically)")
    DIGITAL_DOWNLOAD_AND_ONLINE = ("EB", "Digital download and online")
    DIGITAL_ONLINE = ("EC", "Digital online")
    DIGITAL_DOWNLOAD = ("ED", "Digital download")


class PublishingStatus(CodeList):
    """List 64."""

    UNSPECIFIED = ("00", "Unspecified")
    CANCELLED = ("01", "Cancelled")
    FORTHCOMING = ("02", "Forthcoming")
    POSTPONED_INDEFINITELY = ("03", "Postponed indefinitely")
    ACTIVE = ("04", "Active")
    NO_LONGER_OUR_PRODUCT = ("05", "No longer our product")
    OUT_OF_STOCK_INDEFINITELY = ("06", "Out of stock indefinitely")
    OUT_OF_PRINT = ("07", "Out of print")
    INACTIVE = ("08", "Inactive")
    UNKNOWN = ("09", "Unknown")
    REMAINDERED = ("10", "Remaindered")
    WITHDRAWN_FROM_SALE = ("11", "Withdrawn from sale")
    ACTIVE_NOT_SOLD_SEPARATELY = ("13", "Active, but not sold separately")
    RECALLED = ("15", "Recalled")
    TEMPORARILY_WITHDRAWN = ("16", "Temporarily withdrawn from sale")
    PERMANENTLY_WITHDRAWN = ("17", "Permanently withdrawn from sale")


class PublishingDateRole(CodeList):
    """List 163."""

    PUBLICATION_DATE = ("01", "Publication date")
    SALES_EMBARGO_DATE = ("02", "Sales embargo date")
    PUBLIC_ANNOUNCEMENT_DATE = ("09", "Public announcement date")
    TRADE_ANNOUNCEMENT_DATE = ("10", "Trade announcement date")
    FIRST_PUBLICATION = ("11", "Date of first publication")
    LAST_REPRINT = ("12", "Last reprint date")
    OUT_OF_PRINT_DATE = ("13", "Out-of-print / permanently withdrawn date")
    LAST_REISSUE = ("16", "Last reissue date")
    PRINT_COUNTERPART_PUBLICATION = ("19", "Publication date of print counterpart")
    FIRST_PUBLICATION_ORIGINAL_LANGUAGE = ("20", "Date of first publication in original language")
    FORTHCOMING_REISSUE = ("21", "Forthcoming reissue date")
    EXPECTED_AVAILABILITY_AFTER_WITHDRAWAL = ("22", "Expected availability date after temporary withdrawal")
    REVIEW_EMBARGO = ("23", "Review embargo date")
    RESERVATION_ORDER_DEADLINE = ("25", "Publisher's reservation order deadline")
    FORTHCOMING_REPRINT = ("26", "Forthcoming reprint date")


class SalesRightsType(CodeList):
    """List 46. 00 is only valid as a ROWSalesRightsType."""

    UNKNOWN = ("00", "Sales rights unknown or unstated for any other reason")
    FOR_SALE_EXCLUSIVE = ("01", "For sale with exclusive rights in the specified countries or territories")
    FOR_SALE_NON_EXCLUSIVE = (
        "02",
        "For sale with non-exclusive rights in the specified countries or territories",
    )
    NOT_FOR_SALE = ("03", "Not for sale in the specified countries or territories (reason unspecified)")
    NOT_FOR_SALE_PUBLISHER_EXCLUSIVE = (
        "04",
        "Not for sale in the specified countries (but publisher holds exclusive rights in those countries)",
    )
    NOT_FOR_SALE_PUBLISHER_NON_EXCLUSIVE = (
        "05",
        "Not for sale in the specified countries (publisher holds non-exclusive rights in those countries)",
    )
    NOT_FOR_SALE_NO_RIGHTS = (
        "06",
        "Not for sale in the specified countries (because publisher does not hold rights)",
    )

    @property
    def is_for_sale(self) -> bool:
        return self in (SalesRightsType.FOR_SALE_EXCLUSIVE, SalesRightsType.FOR_SALE_NON_EXCLUSIVE)


class ResourceContentType(CodeList):
    """List 158."""

    FRONT_COVER = ("01", "Front cover")
    BACK_COVER = ("02", "Back cover")
    COVER_PACK = ("03", "Cover / pack")
    CONTRIBUTOR_PICTURE = ("04", "Contributor picture")
    COLLECTION_IMAGE = ("05", "Collection image / artwork")
    COLLECTION_LOGO = ("06", "Collection logo")
    PRODUCT_IMAGE = ("07", "Product image / artwork")
    PRODUCT_LOGO = ("08", "Product logo")
    PUBLISHER_LOGO = ("09", "Publisher logo")
    IMPRINT_LOGO = ("10", "Imprint logo")
    SAMPLE_CONTENT = ("15", "Sample content")
    REVIEW = ("17", "Review")
    PRESS_RELEASE = ("24", "Press release")
    TABLE_OF_CONTENTS = ("25", "Table of contents")
    TRAILER = ("26", "Trailer")
    FULL_CONTENT = ("28", "Full content")
    FULL_COVER = ("29", "Full cover")
    DESCRIPTION = ("31", "Description")
    ONLINE_ADVERTISEMENT_PANEL = ("35", "Online advertisement panel")
    PROMOTIONAL_EVENT_MATERIAL = ("37", "Promotional event material")
    COVER_HOLDING_IMAGE = ("45", "Cover holding image")


class ResourceMode(CodeList):
    """List 159."""

    APPLICATION = ("01", "Application")
    AUDIO = ("02", "Audio")
    IMAGE = ("03", "Image")
    TEXT = ("04", "Text")
    VIDEO = ("05", "Video")
    MULTI_MODE = ("06", "Multi-mode")


class ContentDateRole(CodeList):
    """List 155 (dates on a supporting resource)."""

    PUBLICATION_DATE = ("01", "Publication date")
    BROADCAST_DATE = ("04", "Broadcast date")
    FROM_DATE = ("14", "From date")
    UNTIL_DATE = ("15", "Until date")
    LAST_UPDATED = ("17", "Last updated")
    FROM_UNTIL = ("24", "From… until date")
    AVAILABLE_FROM = ("27", "Available from")
    AVAILABLE_UNTIL = ("28", "Available until")


_LIST_NUMBERS = {
    "ProductForm": 150,
    "PublishingStatus": 64,
    "PublishingDateRole": 163,
    "SalesRightsType": 46,
    "ResourceContentType": 158,
    "ResourceMode": 159,
    "ContentDateRole": 155,
}

# Consonance exposes ONIX 2.1 (List 7) form codes; these are the ones its catalogs carry for the four
# formats we sync, mapped to their ONIX 3.0 (List 150) equivalents. DG (2.1 "Electronic book text")
# has no 3.0 twin; trade practice sends ebooks as ED.
ONIX21_TO_PRODUCT_FORM: dict[str, ProductForm] = {
    "BA": ProductForm.BOOK,
    "BB": ProductForm.HARDBACK,
    "BC": ProductForm.PAPERBACK,
    "AC": ProductForm.AUDIO_CD,
    "AJ": ProductForm.DOWNLOADABLE_AUDIO,
    "DG": ProductForm.DIGITAL_DOWNLOAD,
}


def product_form_from_onix21(code: str) -> ProductForm:
    try:
        return ONIX21_TO_PRODUCT_FORM[code]
    except KeyError:
        raise UnknownCodeError("ONIX 2.1 product form (list 7, as mapped)", code) from None


class FormatFamily(StrEnum):
    """The format families whose required asset sets differ (print, ebook, audio)."""

    PRINT = "print"
    EBOOK = "ebook"
    AUDIO = "audio"


def format_family(form: ProductForm) -> FormatFamily:
    if form.value.startswith("B"):
        return FormatFamily.PRINT
    if form.value.startswith("A"):
        return FormatFamily.AUDIO
    return FormatFamily.EBOOK
