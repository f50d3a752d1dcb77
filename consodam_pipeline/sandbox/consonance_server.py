"""A local Consonance: GraphQL at /graphql (Bearer key) and the legacy REST v4 products list (Token key).

Field and argument names follow the vendor's published GraphQL schema (`products(productSearch: ...)`
with keyset `after`, `changedSince`, `isbn13In`, publication-date ranges, `onix21ProductFormCodeIn`;
`updateProduct`). Where the public record is silent the sandbox adds, and marks below as conventions:
the `limit` page size, `salesEmbargoDate`, `rowSalesRightsTypeCode`, `projectStageName`, `updatedAt`,
the supporting-resource mutations used to link DAM assets back to a title, and the workflow: a product's
`todos` (Consonance's to-dos, `milestone` flagged, due relative to publication, with a done date), the
ordered `projectStages`, the stage write `updateProduct(input: {id, projectStageName})` (one of those
stages), and `productionFiles` per product with `createProductionFile` / `deleteProductionFile` (the
vendor documents DeleteProductionFile, not the type's fields).
"""

from __future__ import annotations

import json
import math
import random
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

import graphql
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from consodam_pipeline.domain.isbn import InvalidISBNError, hyphenate, isbn13_to_isbn10
from consodam_pipeline.domain.onix import PublishingStatus, UnknownCodeError
from consodam_pipeline.sandbox.common import fault_routes, json_body, now_ts, today
from consodam_pipeline.sandbox.faults import FaultInjector, FaultMiddleware
from consodam_pipeline.sandbox.state import CONSONANCE_DDL, StateDB

DEFAULT_PAGE = 100
MAX_PAGE = 1000
ROLE_NAMES = {"A01": "By (author)", "A12": "Illustrated by", "B06": "Translated by"}
STAGES = ("Acquisition", "Editorial", "Design", "Cover approval", "Production sign-off", "Files to press",
          "Published")  # fmt: skip
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


def _isbn_block(isbn13: str | None) -> dict[str, Any] | None:
    if not isbn13:
        return None
    try:
        return {"isbn13": isbn13, "isbn10": _safe_isbn10(isbn13), "isbnWithDashes": hyphenate(isbn13)}
    except InvalidISBNError:
        return {"isbn13": isbn13, "isbn10": None, "isbnWithDashes": None}


def _safe_isbn10(isbn13: str) -> str | None:
    try:
        return isbn13_to_isbn10(isbn13)
    except InvalidISBNError:
        return None


def _code(code: str | None, names: dict[str, str]) -> dict[str, str] | None:
    return {"code": code, "description": names.get(code, code)} if code else None


def _status_names() -> dict[str, str]:
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


class ConsonanceSandbox:
    def __init__(self, db: StateDB, api_key: str, injector: FaultInjector | None = None) -> None:
        self.db = db
        self.api_key = api_key
        self.injector = injector or FaultInjector()
        self.schema = graphql.build_schema(SDL)
        self.status_names = _status_names()
        query = self.schema.query_type
        mutation = self.schema.mutation_type
        assert query is not None and mutation is not None
        query.fields["products"].resolve = self.resolve_products
        query.fields["product"].resolve = self.resolve_product
        query.fields["works"].resolve = self.resolve_works
        query.fields["work"].resolve = self.resolve_work
        query.fields["projectStages"].resolve = lambda *_: list(STAGES)
        mutation.fields["updateProduct"].resolve = self.update_product
        mutation.fields["createSupportingResource"].resolve = self.create_supporting_resource
        mutation.fields["deleteSupportingResource"].resolve = self.delete_supporting_resource
        mutation.fields["createProductionFile"].resolve = self.create_production_file
        mutation.fields["deleteProductionFile"].resolve = self.delete_production_file

    # ---- read model ----

    def _works(self, work_ids: set[int]) -> dict[int, dict[str, Any]]:
        if not work_ids:
            return {}
        marks = ",".join("?" * len(work_ids))
        ids = tuple(work_ids)
        works = self.db.query(f"SELECT * FROM works WHERE id IN ({marks})", ids)
        product_ids: dict[int, list[int]] = {}
        for row in self.db.query(f"SELECT id, work_id FROM products WHERE work_id IN ({marks})", ids):
            product_ids.setdefault(row["work_id"], []).append(row["id"])
        resources: dict[int, list[dict[str, Any]]] = {}
        for row in self.db.query(f"SELECT * FROM supporting_resources WHERE work_id IN ({marks})", ids):
            resources.setdefault(row["work_id"], []).append(self._resource(row))
        out = {}
        for w in works:
            contributions = [
                {
                    **c,
                    "productIds": product_ids.get(w["id"], []),
                    "onixContributorRole": _code(c["onixContributorRoleCode"], ROLE_NAMES),
                }
                for c in json.loads(w["contributions"])
            ]
            out[w["id"]] = {
                "id": w["id"],
                "title": w["title"],
                "subtitle": w["subtitle"],
                "contributions": contributions,
                "supportingResources": resources.get(w["id"], []),
            }
        return out

    @staticmethod
    def _resource(row: sqlite3.Row) -> dict[str, Any]:
        return {
            "id": row["id"],
            "caption": row["caption"],
            "filename": row["filename"],
            "imageRemoteUrl": row["image_remote_url"],
            "productIds": json.loads(row["product_ids"]),
            "resourceContentType": row["resource_content_type"],
            "createdAt": row["created_at"],
        }

    def _products(self, rows: list[sqlite3.Row]) -> list[dict[str, Any]]:
        works = self._works({r["work_id"] for r in rows})
        todos, files = (
            self._per_product("todos", rows, _todo),
            self._per_product("production_files", rows, _file),
        )
        return [
            {**self._product(r, works[r["work_id"]]), "todos": todos.get(r["id"], []),
             "productionFiles": files.get(r["id"], [])}
            for r in rows
        ]  # fmt: skip

    def _per_product(
        self, table: str, products: list[sqlite3.Row], shape: Any
    ) -> dict[int, list[dict[str, Any]]]:
        ids = tuple(r["id"] for r in products)
        if not ids:
            return {}
        found: dict[int, list[dict[str, Any]]] = {}
        rows = self.db.query(
            f"SELECT * FROM {table} WHERE product_id IN ({','.join('?' * len(ids))}) ORDER BY id", ids
        )
        for row in rows:
            found.setdefault(row["product_id"], []).append(shape(row))
        return found

    def _product(self, r: sqlite3.Row, work: dict[str, Any]) -> dict[str, Any]:
        for_sale, not_for_sale = json.loads(r["for_sale"]), json.loads(r["not_for_sale"])
        return {
            "id": r["id"],
            "isbn": _isbn_block(r["isbn13"]),
            "fullTitle": r["full_title"],
            "subtitle": r["subtitle"],
            "publicationDate": r["publication_date"],
            "onixPublishingStatusCode": r["publishing_status"],
            "onixPublishingStatus": _code(r["publishing_status"], self.status_names),
            "onix21ProductFormCode": r["form_code"],
            "onix21ProductForm": _code(r["form_code"], LIST7_NAMES),
            "forSaleCountryCodes": for_sale,
            "notForSaleCountryCodes": not_for_sale,
            "isForSaleWorldwide": bool(r["worldwide"]),
            "salesRightsDescription": rights_description(
                for_sale, not_for_sale, bool(r["worldwide"]), r["row_rights_type"]
            ),
            "rowSalesRightsTypeCode": r["row_rights_type"],
            "salesEmbargoDate": r["embargo_date"],
            "imprint": {"name": r["imprint"]},
            "projectStageName": r["project_stage"],
            "updatedAt": r["updated_at"],
            "work": work,
        }

    def search_products(self, search: dict[str, Any], limit: int) -> list[sqlite3.Row]:
        where, params = ["1=1"], []
        simple = {
            "after": "id > ?",
            "idEq": "id = ?",
            "isbn13Eq": "isbn13 = ?",
            "changedSince": "changed_on >= ?",
            "publicationDateEq": "publication_date = ?",
            "publicationDateGt": "publication_date > ?",
            "publicationDateLt": "publication_date < ?",
            "publicationDateGteq": "publication_date >= ?",
            "publicationDateLteq": "publication_date <= ?",
        }
        for arg, clause in simple.items():
            if search.get(arg) is not None:
                where.append(clause)
                params.append(search[arg])
        for arg, column in (("isbn13In", "isbn13"), ("onix21ProductFormCodeIn", "form_code")):
            if search.get(arg) is not None:
                values = list(search[arg])
                where.append(f"{column} IN ({','.join('?' * len(values))})" if values else "0=1")
                params.extend(values)
        if search.get("titleCont"):
            where.append("full_title LIKE ?")
            params.append(f"%{search['titleCont']}%")
        sql = f"SELECT * FROM products WHERE {' AND '.join(where)} ORDER BY id LIMIT ?"
        return self.db.query(sql, (*params, limit))

    def resolve_products(
        self, _root: Any, _info: Any, productSearch: dict[str, Any] | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        size = max(1, min(limit or DEFAULT_PAGE, MAX_PAGE))
        return self._products(self.search_products(productSearch or {}, size))

    def resolve_product(self, _root: Any, _info: Any, id: int) -> dict[str, Any] | None:
        rows = self.db.query("SELECT * FROM products WHERE id = ?", (id,))
        return self._products(rows)[0] if rows else None

    def resolve_works(
        self, _root: Any, _info: Any, after: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        size = max(1, min(limit or DEFAULT_PAGE, MAX_PAGE))
        ids = [
            r["id"]
            for r in self.db.query(
                "SELECT id FROM works WHERE id > ? ORDER BY id LIMIT ?", (after or 0, size)
            )
        ]
        works = self._works(set(ids))
        return [works[i] for i in ids]

    def resolve_work(self, _root: Any, _info: Any, id: int) -> dict[str, Any] | None:
        return self._works({id}).get(id)

    # ---- writes ----

    def touch_products(self, conn: sqlite3.Connection, where: str, params: tuple[object, ...]) -> None:
        conn.execute(
            f"UPDATE products SET changed_on = ?, updated_at = ? WHERE {where}", (today(), now_ts(), *params)
        )

    def update_product(self, _root: Any, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        errors = []
        columns = {
            "publicationDate": "publication_date",
            "onixPublishingStatusCode": "publishing_status",
            "projectStageName": "project_stage",
        }
        if input.get("publicationDate") is not None:
            try:
                date.fromisoformat(str(input["publicationDate"]))
            except ValueError:
                errors.append(_error("publicationDate", "is not a valid date"))
        if input.get("projectStageName") is not None and input["projectStageName"] not in STAGES:
            errors.append(_error("projectStageName", f"is not a project stage ({', '.join(STAGES)})"))
        if input.get("onixPublishingStatusCode") is not None:
            try:
                PublishingStatus.parse(input["onixPublishingStatusCode"])
            except UnknownCodeError as exc:
                errors.append(_error("onixPublishingStatusCode", str(exc)))
        if not self.db.query("SELECT 1 FROM products WHERE id = ?", (input["id"],)):
            errors.append(_error("id", "not found"))
        if errors:
            return {"product": None, "errors": errors}
        sets = {columns[k]: v for k, v in input.items() if k in columns and v is not None}
        with self.db.tx() as conn:
            if sets:
                assignments = ", ".join(f"{c} = ?" for c in sets)
                conn.execute(f"UPDATE products SET {assignments} WHERE id = ?", (*sets.values(), input["id"]))
                self.touch_products(conn, "id = ?", (input["id"],))
        return {"product": self.resolve_product(None, None, input["id"]), "errors": []}

    def create_supporting_resource(self, _root: Any, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        ids = list(input["productIds"])
        marks = ",".join("?" * len(ids))
        rows = (
            self.db.query(f"SELECT DISTINCT work_id FROM products WHERE id IN ({marks})", tuple(ids))
            if ids
            else []
        )
        if len(rows) != 1:
            return {
                "supportingResource": None,
                "errors": [_error("productIds", "must name existing products of one work")],
            }
        with self.db.tx() as conn:
            cur = conn.execute(
                "INSERT INTO supporting_resources (product_ids, work_id, resource_content_type, image_remote_url, "
                "caption, filename, created_at) VALUES (?,?,?,?,?,?,?)",
                (
                    json.dumps(sorted(ids)),
                    rows[0]["work_id"],
                    input["resourceContentType"],
                    input["imageRemoteUrl"],
                    input.get("caption"),
                    input.get("filename"),
                    now_ts(),
                ),
            )
            self.touch_products(conn, f"id IN ({marks})", tuple(ids))
            new_id = cur.lastrowid
        row = self.db.query("SELECT * FROM supporting_resources WHERE id = ?", (new_id,))[0]
        return {"supportingResource": self._resource(row), "errors": []}

    def delete_supporting_resource(self, _root: Any, _info: Any, id: int) -> dict[str, Any]:
        rows = self.db.query("SELECT * FROM supporting_resources WHERE id = ?", (id,))
        if not rows:
            return {"supportingResource": None, "errors": [_error("id", "not found")]}
        ids = json.loads(rows[0]["product_ids"])
        with self.db.tx() as conn:
            conn.execute("DELETE FROM supporting_resources WHERE id = ?", (id,))
            self.touch_products(conn, f"id IN ({','.join('?' * len(ids))})", tuple(ids))
        return {"supportingResource": self._resource(rows[0]), "errors": []}

    def create_production_file(self, _root: Any, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        if not self.db.query("SELECT 1 FROM products WHERE id = ?", (input["productId"],)):
            return {"productionFile": None, "errors": [_error("productId", "not found")]}
        with self.db.tx() as conn:
            cur = conn.execute(
                "INSERT INTO production_files (product_id, file_type, url, caption, created_at) VALUES (?,?,?,?,?)",
                (input["productId"], input["fileType"], input["url"], input.get("caption"), now_ts()),
            )
            self.touch_products(conn, "id = ?", (input["productId"],))
            new_id = cur.lastrowid
        return {"productionFile": _file(self.db.query("SELECT * FROM production_files WHERE id = ?", (new_id,))[0]),
                "errors": []}  # fmt: skip

    def delete_production_file(self, _root: Any, _info: Any, id: int) -> dict[str, Any]:
        rows = self.db.query("SELECT * FROM production_files WHERE id = ?", (id,))
        if not rows:
            return {"productionFile": None, "errors": [_error("id", "not found")]}
        with self.db.tx() as conn:
            conn.execute("DELETE FROM production_files WHERE id = ?", (id,))
            self.touch_products(conn, "id = ?", (rows[0]["product_id"],))
        return {"productionFile": _file(rows[0]), "errors": []}

    # ---- HTTP ----

    def _bearer_ok(self, request: Request) -> bool:
        return request.headers.get("authorization", "") == f"Bearer {self.api_key}"

    def _token_ok(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        return header in (f"Token token={self.api_key}", f'Token token="{self.api_key}"')

    async def graphql_endpoint(self, request: Request) -> Response:
        if not self._bearer_ok(request):
            return JSONResponse(
                {"errors": [{"message": "Unauthorized: invalid or missing API key"}]}, status_code=401
            )
        try:
            body = await json_body(request)
        except ValueError:
            return JSONResponse({"errors": [{"message": "request body is not JSON"}]}, status_code=400)
        result = graphql.graphql_sync(
            self.schema,
            body.get("query", ""),
            variable_values=body.get("variables"),
            operation_name=body.get("operationName"),
        )
        payload: dict[str, Any] = {"data": result.data}
        if result.errors:
            payload["errors"] = [e.formatted for e in result.errors]
        return JSONResponse(payload)

    async def rest_products(self, request: Request) -> Response:
        if not self._token_ok(request):
            return JSONResponse({"error": "HTTP Token: Access denied."}, status_code=401)
        try:
            page = max(1, int(request.query_params.get("page", "1")))
            per_page = max(1, min(int(request.query_params.get("per_page", "25")), MAX_PAGE))
        except ValueError:
            return JSONResponse({"error": "page and per_page must be integers"}, status_code=400)
        total = self.db.query("SELECT COUNT(*) AS n FROM products")[0]["n"]
        rows = self.db.query(
            "SELECT * FROM products ORDER BY id LIMIT ? OFFSET ?", (per_page, (page - 1) * per_page)
        )
        works = self._works({r["work_id"] for r in rows})
        return JSONResponse(
            {
                "current_page": page,
                "per_page": per_page,
                "total_pages": max(1, math.ceil(total / per_page)),
                "url": str(request.url),
                "products": [self._rest_product(r, works[r["work_id"]]) for r in rows],
            }
        )

    def _rest_product(self, r: sqlite3.Row, work: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": r["id"],
            "work_id": r["work_id"],
            "full_title": r["full_title"],
            "subtitle": r["subtitle"],
            "pub_date": r["publication_date"],
            "publishing_status": r["publishing_status"],
            "product_form": r["form_code"],
            "in_house_edition": LIST7_NAMES.get(r["form_code"], r["form_code"]),
            "isbn": r["isbn13"] or "No ISBN",
            "imprint": r["imprint"],
            "project_stage_name": r["project_stage"],
            "authorship": ", ".join(c["contributor"]["name"] for c in work["contributions"]),
            "supportingresources": [
                {"id": s["id"], "style_urls": [{"url": s["imageRemoteUrl"]}]}
                for s in work["supportingResources"]
                if r["id"] in s["productIds"]
            ],
        }

    # ---- /_sandbox activity ----

    async def admin_product(self, request: Request) -> Response:
        pid = int(request.path_params["id"])
        if request.method == "DELETE":
            with self.db.tx() as conn:
                deleted = conn.execute("DELETE FROM products WHERE id = ?", (pid,)).rowcount
            return JSONResponse({"deleted": deleted})
        body = await json_body(request)
        columns = {
            "fullTitle": "full_title",
            "publicationDate": "publication_date",
            "salesEmbargoDate": "embargo_date",
            "projectStageName": "project_stage",
            "onixPublishingStatusCode": "publishing_status",
            "rowSalesRightsTypeCode": "row_rights_type",
            "isbn13": "isbn13",
        }
        sets: dict[str, Any] = {columns[k]: v for k, v in body.items() if k in columns}
        for key, column in (("forSaleCountryCodes", "for_sale"), ("notForSaleCountryCodes", "not_for_sale")):
            if key in body:
                sets[column] = json.dumps(body[key])
        if "isForSaleWorldwide" in body:
            sets["worldwide"] = int(bool(body["isForSaleWorldwide"]))
        if not sets:
            return JSONResponse(
                {"error": f"nothing to change; fields: {sorted([*columns, 'forSaleCountryCodes'])}"},
                status_code=400,
            )
        with self.db.tx() as conn:
            changed = conn.execute(
                f"UPDATE products SET {', '.join(f'{c} = ?' for c in sets)} WHERE id = ?",
                (*sets.values(), pid),
            ).rowcount
            self.touch_products(conn, "id = ?", (pid,))
        if not changed:
            return JSONResponse({"error": "no such product"}, status_code=404)
        return JSONResponse({"product": self.resolve_product(None, None, pid)})

    async def admin_complete_todo(self, request: Request) -> Response:
        """Someone ticks a to-do off: `{"doneDate": "YYYY-MM-DD"}` (default today)."""
        body = await json_body(request)
        with self.db.tx() as conn:
            rows = conn.execute(
                "SELECT product_id FROM todos WHERE id = ?", (request.path_params["id"],)
            ).fetchall()
            if not rows:
                return JSONResponse({"error": "no such to-do"}, status_code=404)
            conn.execute("UPDATE todos SET done_date = ? WHERE id = ?",
                         (body.get("doneDate") or today(), request.path_params["id"]))  # fmt: skip
            self.touch_products(conn, "id = ?", (rows[0]["product_id"],))
        return JSONResponse({"todo": _todo(self.db.query("SELECT * FROM todos WHERE id = ?",
                                                         (request.path_params["id"],))[0])})  # fmt: skip

    async def admin_milestone(self, request: Request) -> Response:
        body = await json_body(request)
        return await self._set_stage(int(request.path_params["id"]), str(body.get("stage", "Cover approval")))

    async def _set_stage(self, pid: int, stage: str) -> Response:
        with self.db.tx() as conn:
            changed = conn.execute(
                "UPDATE products SET project_stage = ? WHERE id = ?", (stage, pid)
            ).rowcount
            self.touch_products(conn, "id = ?", (pid,))
        if not changed:
            return JSONResponse({"error": "no such product"}, status_code=404)
        return JSONResponse({"id": pid, "projectStageName": stage})

    async def admin_activity(self, request: Request) -> Response:
        """Random edits by people at work: title fixes, rights changes, date moves, on N products."""
        body = await json_body(request)
        count, rng = int(body.get("changes", 10)), random.Random(body.get("seed", 0))
        max_id = self.db.query("SELECT MAX(id) AS m FROM products")[0]["m"] or 0
        picked = sorted(set(rng.sample(range(1, max_id + 1), min(count, max_id))))
        with self.db.tx() as conn:
            for pid in picked:
                kind = rng.choice(("title", "rights", "date"))
                if kind == "title":
                    conn.execute(
                        "UPDATE products SET full_title = full_title || ' (revised)' WHERE id = ?", (pid,)
                    )
                elif kind == "rights":
                    conn.execute(
                        "UPDATE products SET worldwide = 1, for_sale = '[]', not_for_sale = ?, "
                        "row_rights_type = NULL WHERE id = ?",
                        (json.dumps(rng.choice([["US"], ["CN"], []])), pid),
                    )
                else:
                    conn.execute(
                        "UPDATE products SET publication_date = date(publication_date, '+7 days') "
                        "WHERE id = ? AND publication_date GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'",
                        (pid,),
                    )
            marks = ",".join("?" * len(picked))
            if picked:
                self.touch_products(conn, f"id IN ({marks})", tuple(picked))
        return JSONResponse({"changed_product_ids": picked})

    async def admin_stats(self, _request: Request) -> Response:
        counts = {
            t: self.db.query(f"SELECT COUNT(*) AS n FROM {t}")[0]["n"]
            for t in ("works", "products", "supporting_resources", "todos", "production_files")
        }
        return JSONResponse(
            {
                "counts": counts,
                "faults": self.injector.describe(),
                "catalog": {k: self.db.meta(k) for k in ("works", "seed", "anchor", "dirt_rate")},
            }
        )

    def app(self) -> Starlette:
        routes = [
            Route("/graphql", self.graphql_endpoint, methods=["POST"]),
            Route("/api/v4/products.json", self.rest_products, methods=["GET"]),
            Route("/_sandbox/products/{id:int}", self.admin_product, methods=["POST", "DELETE"]),
            Route("/_sandbox/products/{id:int}/milestone", self.admin_milestone, methods=["POST"]),
            Route("/_sandbox/todos/{id:int}/complete", self.admin_complete_todo, methods=["POST"]),
            Route("/_sandbox/activity", self.admin_activity, methods=["POST"]),
            Route("/_sandbox/stats", self.admin_stats, methods=["GET"]),
            *fault_routes(self.injector),
        ]
        return Starlette(routes=routes, middleware=[Middleware(FaultMiddleware, injector=self.injector)])


def _todo(row: sqlite3.Row) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "milestone": bool(row["milestone"]), "dueDate": row["due_date"],
            "doneDate": row["done_date"]}  # fmt: skip


def _file(row: sqlite3.Row) -> dict[str, Any]:
    return {"id": row["id"], "fileType": row["file_type"], "url": row["url"], "caption": row["caption"],
            "createdAt": row["created_at"]}  # fmt: skip


def _error(attribute: str, message: str) -> dict[str, Any]:
    return {"attribute": attribute, "field": attribute, "message": message, "messages": [message]}


def open_consonance_db(data_dir: Path) -> StateDB:
    return StateDB(data_dir / "consonance.sqlite", CONSONANCE_DDL)
