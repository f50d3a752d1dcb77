"""The title sheet: an edition's finalized title information as an ONIX 3.0 message with one `<Product>`.

Record reference, ISBN-13, title, contributors, product form, imprint and publisher, publishing status and
date, sales rights, and a `<CollateralDetail><SupportingResource>` per approved asset: content type (List
158), mode (List 159), version features (List 162: file format as a List 178 code, pixel height and width,
filename) and the DAM URL. Pure: data in, XML text out; the same data always gives the same text (the sent
time is the data's own, not the clock's), so a sheet is versioned only when the title data changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TypedDict
from xml.etree import ElementTree as ET

ONIX_NAMESPACE = "http://ns.editeur.org/onix/3.0/reference"
FILE_FORMATS = {  # List 178, supporting resource file format
    "image/jpeg": "D502",
    "image/png": "D503",
    "image/gif": "D501",
    "image/tiff": "D504",
    "application/pdf": "D401",
    "application/epub+zip": "E101",
    "audio/mpeg": "A103",
    "audio/mp4": "A104",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "D104",
}


@dataclass(frozen=True)
class SheetResource:
    """One approved asset version the sheet lists."""

    content_type: str  # List 158
    mode: str  # List 159
    url: str
    mime_type: str | None = None
    width_px: int | None = None
    height_px: int | None = None
    filename: str | None = None


@dataclass(frozen=True)
class SheetEdition:
    record_reference: str
    isbn13: str
    title: str
    subtitle: str | None
    product_form: str  # List 150
    imprint: str | None
    publisher: str
    publishing_status: str  # List 64
    publication_date: date | None
    contributors: Sequence[tuple[str, str | None]] = ()  # (name, List 17 role)
    for_sale_worldwide: bool = False
    for_sale: Sequence[str] = ()
    not_for_sale: Sequence[str] = ()
    resources: Sequence[SheetResource] = field(default_factory=tuple)


def _add(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    child = ET.SubElement(parent, tag)
    if text is not None:
        child.text = text
    return child


def _sales_rights(parent: ET.Element, edition: SheetEdition) -> None:
    if not edition.for_sale_worldwide and not edition.for_sale:
        return  # nothing is for sale: no rights block
    rights = _add(parent, "SalesRights")
    _add(rights, "SalesRightsType", "01")  # for sale with exclusive rights
    territory = _add(rights, "Territory")
    if edition.for_sale_worldwide:
        _add(territory, "RegionsIncluded", "WORLD")
        if edition.not_for_sale:
            _add(territory, "CountriesExcluded", " ".join(sorted(edition.not_for_sale)))
    else:
        _add(territory, "CountriesIncluded", " ".join(sorted(edition.for_sale)))
    if edition.not_for_sale and not edition.for_sale_worldwide:
        excluded = _add(parent, "SalesRights")
        _add(excluded, "SalesRightsType", "03")  # not for sale
        _add(_add(excluded, "Territory"), "CountriesIncluded", " ".join(sorted(edition.not_for_sale)))


def _resource(parent: ET.Element, resource: SheetResource) -> None:
    element = _add(parent, "SupportingResource")
    _add(element, "ResourceContentType", resource.content_type)
    _add(element, "ContentAudience", "00")  # unrestricted
    _add(element, "ResourceMode", resource.mode)
    version = _add(element, "ResourceVersion")
    _add(version, "ResourceForm", "02")  # downloadable file
    features = [
        ("01", FILE_FORMATS.get(resource.mime_type or "")),
        ("02", resource.height_px),
        ("03", resource.width_px),
        ("04", resource.filename),
    ]
    for kind, value in features:
        if value is not None:
            feature = _add(version, "ResourceVersionFeature")
            _add(feature, "ResourceVersionFeatureType", kind)
            _add(feature, "FeatureValue", str(value))
    _add(version, "ResourceLink", resource.url)


def render(edition: SheetEdition, sender: str) -> str:
    """The ONIX 3.0 message (reference tags) for one edition."""
    message = ET.Element("ONIXMessage", {"xmlns": ONIX_NAMESPACE, "release": "3.0"})
    header = _add(message, "Header")
    _add(_add(header, "Sender"), "SenderName", sender)
    sent = edition.publication_date or date(2000, 1, 1)
    _add(header, "SentDateTime", sent.strftime("%Y%m%d"))
    product = _add(message, "Product")
    _add(product, "RecordReference", edition.record_reference)
    _add(product, "NotificationType", "03")  # confirmed on publication
    identifier = _add(product, "ProductIdentifier")
    _add(identifier, "ProductIDType", "15")
    _add(identifier, "IDValue", edition.isbn13)
    descriptive = _add(product, "DescriptiveDetail")
    _add(descriptive, "ProductComposition", "00")
    _add(descriptive, "ProductForm", edition.product_form)
    detail = _add(descriptive, "TitleDetail")
    _add(detail, "TitleType", "01")
    element = _add(detail, "TitleElement")
    _add(element, "TitleElementLevel", "01")
    _add(element, "TitleText", edition.title)
    if edition.subtitle:
        _add(element, "Subtitle", edition.subtitle)
    for n, (name, role) in enumerate(edition.contributors, start=1):
        contributor = _add(descriptive, "Contributor")
        _add(contributor, "SequenceNumber", str(n))
        _add(contributor, "ContributorRole", role or "A01")
        _add(contributor, "PersonName", name)
    if edition.resources:
        collateral = _add(product, "CollateralDetail")
        for resource in edition.resources:
            _resource(collateral, resource)
    publishing = _add(product, "PublishingDetail")
    if edition.imprint:
        _add(_add(publishing, "Imprint"), "ImprintName", edition.imprint)
    publisher = _add(publishing, "Publisher")
    _add(publisher, "PublishingRole", "01")
    _add(publisher, "PublisherName", edition.publisher)
    _add(publishing, "PublishingStatus", edition.publishing_status)
    if edition.publication_date:
        published = _add(publishing, "PublishingDate")
        _add(published, "PublishingDateRole", "01")
        _add(published, "Date", edition.publication_date.strftime("%Y%m%d"))
    _sales_rights(publishing, edition)
    ET.indent(message)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(message, encoding="unicode") + "\n"


class SheetSummary(TypedDict):
    isbn13: str | None
    title: str | None
    imprint: str | None
    publishing_status: str | None
    publication_date: str | None  # YYYYMMDD, as ONIX writes it
    contributors: list[str | None]
    sales_rights: list[str]
    resources: list[tuple[str, str]]  # (List 158 content type, link)


def _territory(territory: ET.Element | None, ns: dict[str, str]) -> str:
    """A <Territory> as ONIX means it: the countries and regions included, then `excluding` the countries
    excluded (`WORLD excluding CA PH US`)."""
    if territory is None:
        return ""

    def codes(tag: str) -> str:
        return " ".join((territory.findtext(f"o:{tag}", "", ns) or "").split())

    included = " ".join(c for c in (codes("CountriesIncluded"), codes("RegionsIncluded")) if c)
    excluded = " ".join(c for c in (codes("CountriesExcluded"), codes("RegionsExcluded")) if c)
    return f"{included} excluding {excluded}" if excluded else included


def read(xml: str) -> SheetSummary:
    """What a title sheet says, for people: the fields a reviewer checks, read back from the XML."""
    ns = {"o": ONIX_NAMESPACE}
    product = ET.fromstring(xml).find("o:Product", ns)
    if product is None:
        raise ValueError("not a title sheet: no <Product>")

    def text(path: str) -> str | None:
        found = product.find(path, ns)
        return None if found is None else found.text

    rights = [
        (r.findtext("o:SalesRightsType", "", ns), _territory(r.find("o:Territory", ns), ns))
        for r in product.findall("o:PublishingDetail/o:SalesRights", ns)
    ]
    return SheetSummary(
        isbn13=text("o:ProductIdentifier/o:IDValue"),
        title=text("o:DescriptiveDetail/o:TitleDetail/o:TitleElement/o:TitleText"),
        imprint=text("o:PublishingDetail/o:Imprint/o:ImprintName"),
        publishing_status=text("o:PublishingDetail/o:PublishingStatus"),
        publication_date=text("o:PublishingDetail/o:PublishingDate/o:Date"),
        contributors=[c.text for c in product.findall("o:DescriptiveDetail/o:Contributor/o:PersonName", ns)],
        sales_rights=[f"{'for sale' if kind == '01' else 'not for sale'} {where}" for kind, where in rights],
        resources=[
            (
                r.findtext("o:ResourceContentType", "", ns),
                r.findtext("o:ResourceVersion/o:ResourceLink", "", ns),
            )
            for r in product.findall("o:CollateralDetail/o:SupportingResource", ns)
        ],
    )
