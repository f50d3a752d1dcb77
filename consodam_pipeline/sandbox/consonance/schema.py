"""The Consonance sandbox's GraphQL schema (SDL), its code lists and the JSON shapes of its records."""

from __future__ import annotations

import sqlite3
from typing import Any

from consodam_pipeline.domain.isbn import InvalidISBNError, hyphenate, isbn13_to_isbn10
from consodam_pipeline.domain.onix import PublishingStatus

DEFAULT_PAGE = 100
MAX_PAGE = 1000
ROLE_NAMES = {"A01": "By (author)", "A12": "Illustrated by", "B06": "Translated by"}
STAGES = (
    "Acquisition",
    "Editorial",
    "Design",
    "Cover approval",
    "Production sign-off",
    "Files to press",
    "Published",
)
LIST7_NAMES = {
    "BB": "Hardback",
    "BC": "Paperback",
    "DG": "Electronic book text",
    "AJ": "Downloadable audio file",
    "BA": "Book",
    "AC": "CD-Audio",
}

SDL = """
scalar ISO8601Date
scalar ISO8601DateTime

enum ONIX21ProductFormCode { BA BB BC AC AJ DG }

input ProductSearchAttributes {
  after: Int
  idEq: Int
  isbn13Eq: String
  isbn13In: [String!]
  titleCont: String
  changedSince: ISO8601Date
  publicationDateEq: ISO8601Date
  publicationDateGt: ISO8601Date
  publicationDateLt: ISO8601Date
  publicationDateGteq: ISO8601Date
  publicationDateLteq: ISO8601Date
  onix21ProductFormCodeIn: [ONIX21ProductFormCode!]
}

type Todo { id: Int! name: String! milestone: Boolean! dueDate: ISO8601Date doneDate: ISO8601Date }
type ProductionFile { id: Int! fileType: String! url: String! caption: String createdAt: ISO8601DateTime }

type Query {
  "sandbox convention: the project stages, in order"
  projectStages: [String!]!
  "Keyset paging: pass the largest id you have seen as productSearch.after. `limit` is a sandbox convention."
  products(productSearch: ProductSearchAttributes, limit: Int): [Product!]!
  product(id: Int!): Product
  works(after: Int, limit: Int): [Work!]!
  work(id: Int!): Work
}

type Isbn { isbn13: String isbn10: String isbnWithDashes: String }
type CodeDescription { code: String! description: String! }
type Imprint { name: String! }
type Contact { id: Int! name: String! }
type Contribution {
  id: Int!
  sequenceNumber: Int
  productIds: [Int!]!
  onixContributorRoleCode: String
  onixContributorRole: CodeDescription
  contributor: Contact!
}
type SupportingResource {
  id: Int!
  caption: String
  filename: String
  imageRemoteUrl: String
  productIds: [Int!]!
  "ONIX list 158 code (sandbox exposes it as a plain code)"
  resourceContentType: String
  createdAt: ISO8601DateTime
}
type Work {
  id: Int!
  title: String!
  subtitle: String
  contributions: [Contribution!]!
  supportingResources: [SupportingResource!]!
}
type Product {
  id: Int!
  isbn: Isbn
  fullTitle: String!
  subtitle: String
  publicationDate: ISO8601Date
  onixPublishingStatusCode: String
  onixPublishingStatus: CodeDescription
  onix21ProductFormCode: ONIX21ProductFormCode
  onix21ProductForm: CodeDescription
  forSaleCountryCodes: [String!]!
  notForSaleCountryCodes: [String!]!
  isForSaleWorldwide: Boolean!
  salesRightsDescription: String
  "sandbox convention: ONIX ROWSalesRightsType (list 46) for territories not named"
  rowSalesRightsTypeCode: String
  "sandbox convention: ONIX PublishingDateRole 02"
  salesEmbargoDate: ISO8601Date
  imprint: Imprint
  "sandbox convention"
  projectStageName: String
  "sandbox convention"
  updatedAt: ISO8601DateTime
  "sandbox convention"
  todos: [Todo!]!
  "sandbox convention"
  productionFiles: [ProductionFile!]!
  work: Work!
}

input UpdateProductInput {
  id: Int!
  publicationDate: ISO8601Date
  onixPublishingStatusCode: String
  projectStageName: String
}
type ValidationError { attribute: String field: String message: String messages: [String!] }
type UpdateProductPayload { product: Product errors: [ValidationError!]! }

input CreateSupportingResourceInput {
  productIds: [Int!]!
  resourceContentType: String!
  imageRemoteUrl: String!
  caption: String
  filename: String
}
type SupportingResourcePayload { supportingResource: SupportingResource errors: [ValidationError!]! }
input CreateProductionFileInput { productId: Int! fileType: String! url: String! caption: String }
type ProductionFilePayload { productionFile: ProductionFile errors: [ValidationError!]! }

type Mutation {
  updateProduct(input: UpdateProductInput!): UpdateProductPayload!
  "sandbox convention for linking an asset: the vendor documents SupportingResource and imageRemoteUrl"
  createSupportingResource(input: CreateSupportingResourceInput!): SupportingResourcePayload!
  deleteSupportingResource(id: Int!): SupportingResourcePayload!
  "sandbox convention for referencing a production file (a DAM version) in a product's workflow"
  createProductionFile(input: CreateProductionFileInput!): ProductionFilePayload!
  deleteProductionFile(id: Int!): ProductionFilePayload!
}
"""


def isbn_forms(isbn13: str | None) -> tuple[str | None, str | None]:
    """ISBN-10 and the hyphenated form, kept with the product when its ISBN is written: deriving them
    (the check digits, the agency's ranges) costs more than the rest of a product's record, so it is not
    done on every read. An ISBN that cannot be hyphenated is invalid and has neither."""
    if not isbn13:
        return None, None
    try:
        dashes = hyphenate(isbn13)
    except InvalidISBNError:
        return None, None
    return safe_isbn10(isbn13), dashes


def isbn_block(isbn13: str | None, isbn10: str | None, dashes: str | None) -> dict[str, Any] | None:
    if not isbn13:
        return None
    return {"isbn13": isbn13, "isbn10": isbn10, "isbnWithDashes": dashes}


def safe_isbn10(isbn13: str) -> str | None:
    try:
        return isbn13_to_isbn10(isbn13)
    except InvalidISBNError:
        return None


def coded(code: str | None, names: dict[str, str]) -> dict[str, str] | None:
    return {"code": code, "description": names.get(code, code)} if code else None


def status_names() -> dict[str, str]:
    return {s.value: s.description for s in PublishingStatus}


def rights_description(for_sale: list[str], not_for_sale: list[str], worldwide: bool, row: str | None) -> str:
    if worldwide:
        return "World" + (f" excluding {', '.join(not_for_sale)}" if not_for_sale else "")
    text = f"For sale in {', '.join(for_sale)}" if for_sale else "No explicit rights"
    if not_for_sale:
        text += f"; not for sale in {', '.join(not_for_sale)}"
    if row:
        text += f"; rest of world {row}"
    return text


def todo_json(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "milestone": bool(row["milestone"]),
        "dueDate": row["due_date"],
        "doneDate": row["done_date"],
    }


def file_json(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "fileType": row["file_type"],
        "url": row["url"],
        "caption": row["caption"],
        "createdAt": row["created_at"],
    }


def error_json(attribute: str, message: str) -> dict[str, Any]:
    return {"attribute": attribute, "field": attribute, "message": message, "messages": [message]}
