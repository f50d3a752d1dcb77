"""The GraphQL read model (products, works, keyset paging and filters) and mutations (stage, supporting
resources, production files)."""

from __future__ import annotations

import json
import sqlite3
from datetime import date
from functools import lru_cache
from typing import Any

import graphql

from consodam_pipeline.domain.onix import PublishingStatus, UnknownCodeError
from consodam_pipeline.sandbox.common import now_ts, today
from consodam_pipeline.sandbox.consonance.prepared import PreparedQueries
from consodam_pipeline.sandbox.consonance.schema import (
    DEFAULT_PAGE,
    LIST7_NAMES,
    MAX_PAGE,
    ROLE_NAMES,
    SDL,
    STAGES,
    coded,
    error_json,
    file_json,
    isbn_block,
    rights_description,
    status_names,
    todo_json,
)
from consodam_pipeline.sandbox.faults import FaultInjector
from consodam_pipeline.sandbox.state import StateDB


class ConsonanceGraphQL:
    def __init__(self, db: StateDB, api_key: str, injector: FaultInjector | None = None) -> None:
        self.db = db
        self.api_key = api_key
        self.injector = injector or FaultInjector()
        self.schema = graphql.build_schema(SDL)
        self.status_names = status_names()
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
        self.queries = PreparedQueries(self.schema)

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
                    "onixContributorRole": coded(c["onixContributorRoleCode"], ROLE_NAMES),
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
            self._per_product("todos", rows, todo_json),
            self._per_product("production_files", rows, file_json),
        )
        return [
            {
                **self._product(r, works[r["work_id"]]),
                "todos": todos.get(r["id"], []),
                "productionFiles": files.get(r["id"], []),
            }
            for r in rows
        ]

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
        for_sale, not_for_sale = list(_countries(r["for_sale"])), list(_countries(r["not_for_sale"]))
        return {
            "id": r["id"],
            "isbn": isbn_block(r["isbn13"], r["isbn10"], r["isbn_dashes"]),
            "fullTitle": r["full_title"],
            "subtitle": r["subtitle"],
            "publicationDate": r["publication_date"],
            "onixPublishingStatusCode": r["publishing_status"],
            "onixPublishingStatus": coded(r["publishing_status"], self.status_names),
            "onix21ProductFormCode": r["form_code"],
            "onix21ProductForm": coded(r["form_code"], LIST7_NAMES),
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
                errors.append(error_json("publicationDate", "is not a valid date"))
        if input.get("projectStageName") is not None and input["projectStageName"] not in STAGES:
            errors.append(error_json("projectStageName", f"is not a project stage ({', '.join(STAGES)})"))
        if input.get("onixPublishingStatusCode") is not None:
            try:
                PublishingStatus.parse(input["onixPublishingStatusCode"])
            except UnknownCodeError as exc:
                errors.append(error_json("onixPublishingStatusCode", str(exc)))
        if not self.db.query("SELECT 1 FROM products WHERE id = ?", (input["id"],)):
            errors.append(error_json("id", "not found"))
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
                "errors": [error_json("productIds", "must name existing products of one work")],
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
            return {"supportingResource": None, "errors": [error_json("id", "not found")]}
        ids = json.loads(rows[0]["product_ids"])
        with self.db.tx() as conn:
            conn.execute("DELETE FROM supporting_resources WHERE id = ?", (id,))
            self.touch_products(conn, f"id IN ({','.join('?' * len(ids))})", tuple(ids))
        return {"supportingResource": self._resource(rows[0]), "errors": []}

    def create_production_file(self, _root: Any, _info: Any, input: dict[str, Any]) -> dict[str, Any]:
        if not self.db.query("SELECT 1 FROM products WHERE id = ?", (input["productId"],)):
            return {"productionFile": None, "errors": [error_json("productId", "not found")]}
        with self.db.tx() as conn:
            cur = conn.execute(
                "INSERT INTO production_files (product_id, file_type, url, caption, created_at) VALUES (?,?,?,?,?)",
                (input["productId"], input["fileType"], input["url"], input.get("caption"), now_ts()),
            )
            self.touch_products(conn, "id = ?", (input["productId"],))
            new_id = cur.lastrowid
        return {
            "productionFile": file_json(
                self.db.query("SELECT * FROM production_files WHERE id = ?", (new_id,))[0]
            ),
            "errors": [],
        }

    def delete_production_file(self, _root: Any, _info: Any, id: int) -> dict[str, Any]:
        rows = self.db.query("SELECT * FROM production_files WHERE id = ?", (id,))
        if not rows:
            return {"productionFile": None, "errors": [error_json("id", "not found")]}
        with self.db.tx() as conn:
            conn.execute("DELETE FROM production_files WHERE id = ?", (id,))
            self.touch_products(conn, "id = ?", (rows[0]["product_id"],))
        return {"productionFile": file_json(rows[0]), "errors": []}


@lru_cache(maxsize=4096)
def _countries(text: str) -> tuple[str, ...]:
    """A product's country list: a few hundred distinct lists over a whole catalog, each decoded once."""
    return tuple(json.loads(text))
