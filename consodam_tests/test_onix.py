import pytest

from consodam_pipeline.domain.onix import (
    ContentDateRole,
    FormatFamily,
    ProductForm,
    PublishingDateRole,
    PublishingStatus,
    ResourceContentType,
    ResourceMode,
    SalesRightsType,
    UnknownCodeError,
    format_family,
    product_form_from_onix21,
)
from consodam_pipeline.domain.roles import AssetRole


def test_required_product_forms_with_descriptions() -> None:
    expected = {
        "BA": "Book",
        "BB": "Hardback",
        "BC": "Paperback / softback",
        "EA": "Digital (delivered electronically)",
        "EB": "Digital download and online",
        "EC": "Digital online",
        "ED": "Digital download",
        "AJ": "Downloadable audio file",
        "AN": "Downloadable and online audio file",
        "AC": "CD-Audio",
    }
    for code, description in expected.items():
        form = ProductForm.parse(code)
        assert form == code
        assert form.description == description
    assert ProductForm.list_number() == 150


@pytest.mark.parametrize(
    ("enum", "code", "description", "number"),
    [
        (PublishingStatus, "04", "Active", 64),
        (PublishingStatus, "07", "Out of print", 64),
        (PublishingStatus, "15", "Recalled", 64),
        (PublishingDateRole, "02", "Sales embargo date", 163),
        (
            SalesRightsType,
            "01",
            "For sale with exclusive rights in the specified countries or territories",
            46,
        ),
        (ResourceContentType, "04", "Contributor picture", 158),
        (ResourceMode, "03", "Image", 159),
        (ContentDateRole, "15", "Until date", 155),
    ],
)
def test_code_lists(enum: type, code: str, description: str, number: int) -> None:
    member = enum.parse(code)  # type: ignore[attr-defined]
    assert member.description == description
    assert enum.list_number() == number  # type: ignore[attr-defined]


@pytest.mark.parametrize("code", ["12", "ZZ", "", None, "4"])
def test_unknown_codes_raise_naming_the_list(code: object) -> None:
    with pytest.raises(UnknownCodeError, match="PublishingStatus \\(ONIX list 64\\)"):
        PublishingStatus.parse(code)


def test_sales_rights_types_know_for_sale() -> None:
    assert SalesRightsType.parse("02").is_for_sale
    assert not SalesRightsType.parse("03").is_for_sale
    assert not SalesRightsType.parse("00").is_for_sale


def test_onix21_forms_map_to_list_150_and_families() -> None:
    assert product_form_from_onix21("DG") is ProductForm.DIGITAL_DOWNLOAD
    assert format_family(product_form_from_onix21("BB")) is FormatFamily.PRINT
    assert format_family(product_form_from_onix21("AJ")) is FormatFamily.AUDIO
    assert format_family(ProductForm.DIGITAL_ONLINE) is FormatFamily.EBOOK
    with pytest.raises(UnknownCodeError):
        product_form_from_onix21("XX")


def test_asset_roles_map_to_onix_and_back() -> None:
    for role in AssetRole.with_onix_codes():
        assert AssetRole.from_onix(role.content_type, role.mode) is role
    assert AssetRole.TITLE_SHEET not in AssetRole.with_onix_codes()  # a title sheet is no ONIX resource
    assert AssetRole.AUDIO_SAMPLE.mode is ResourceMode.AUDIO
    assert AssetRole.FRONT_COVER.edition_specific and not AssetRole.JACKET_COPY.edition_specific
    with pytest.raises(ValueError, match="no asset role"):
        AssetRole.from_onix("24", "04")
