"""The Consonance sandbox as one Starlette app: GraphQL, REST v4, people at work through /_sandbox/."""

from __future__ import annotations

import json
import math
import random
import sqlite3
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from consodam_pipeline.sandbox.common import (
    BadRequest,
    FastJSONResponse,
    bad_request_handlers,
    fault_routes,
    json_body,
    today,
)
from consodam_pipeline.sandbox.consonance.resolvers import ConsonanceGraphQL
from consodam_pipeline.sandbox.consonance.schema import LIST7_NAMES, MAX_PAGE, isbn_forms, todo_json
from consodam_pipeline.sandbox.faults import FaultMiddleware
from consodam_pipeline.sandbox.state import CONSONANCE_DDL, StateDB


class ConsonanceSandbox(ConsonanceGraphQL):
    # ---- HTTP ----

    def _bearer_ok(self, request: Request) -> bool:
        return request.headers.get("authorization", "") == f"Bearer {self.api_key}"

    def _token_ok(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        return header in (f"Token token={self.api_key}", f'Token token="{self.api_key}"')

    async def graphql_endpoint(self, request: Request) -> Response:
        if not self._bearer_ok(request):
            return FastJSONResponse(
                {"errors": [{"message": "Unauthorized: invalid or missing API key"}]}, status_code=401
            )
        try:
            body = await json_body(request)
        except BadRequest as exc:
            return FastJSONResponse({"errors": [{"message": str(exc)}]}, status_code=400)
        payload = self.queries.execute(
            body.get("query", ""), body.get("variables"), body.get("operationName")
        )
        return FastJSONResponse(payload)

    async def rest_products(self, request: Request) -> Response:
        if not self._token_ok(request):
            return FastJSONResponse({"error": "HTTP Token: Access denied."}, status_code=401)
        try:
            page = max(1, int(request.query_params.get("page", "1")))
            per_page = max(1, min(int(request.query_params.get("per_page", "25")), MAX_PAGE))
        except ValueError:
            return FastJSONResponse({"error": "page and per_page must be integers"}, status_code=400)
        total = self.db.query("SELECT COUNT(*) AS n FROM products")[0]["n"]
        rows = self.db.query(
            "SELECT * FROM products ORDER BY id LIMIT ? OFFSET ?", (per_page, (page - 1) * per_page)
        )
        works = self._works({r["work_id"] for r in rows})
        return FastJSONResponse(
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
            return FastJSONResponse({"deleted": deleted})
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
        if "isbn13" in body:
            sets["isbn10"], sets["isbn_dashes"] = isbn_forms(body["isbn13"])
        if "isForSaleWorldwide" in body:
            sets["worldwide"] = int(bool(body["isForSaleWorldwide"]))
        if not sets:
            return FastJSONResponse(
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
            return FastJSONResponse({"error": "no such product"}, status_code=404)
        return FastJSONResponse({"product": self.resolve_product(None, None, pid)})

    async def admin_complete_todo(self, request: Request) -> Response:
        """Someone ticks a to-do off: `{"doneDate": "YYYY-MM-DD"}` (default today)."""
        body = await json_body(request)
        with self.db.tx() as conn:
            rows = conn.execute(
                "SELECT product_id FROM todos WHERE id = ?", (request.path_params["id"],)
            ).fetchall()
            if not rows:
                return FastJSONResponse({"error": "no such to-do"}, status_code=404)
            conn.execute(
                "UPDATE todos SET done_date = ? WHERE id = ?",
                (body.get("doneDate") or today(), request.path_params["id"]),
            )
            self.touch_products(conn, "id = ?", (rows[0]["product_id"],))
        return FastJSONResponse(
            {
                "todo": todo_json(
                    self.db.query("SELECT * FROM todos WHERE id = ?", (request.path_params["id"],))[0]
                )
            }
        )

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
            return FastJSONResponse({"error": "no such product"}, status_code=404)
        return FastJSONResponse({"id": pid, "projectStageName": stage})

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
        return FastJSONResponse({"changed_product_ids": picked})

    async def admin_stats(self, _request: Request) -> Response:
        counts = {
            t: self.db.query(f"SELECT COUNT(*) AS n FROM {t}")[0]["n"]
            for t in ("works", "products", "supporting_resources", "todos", "production_files")
        }
        return FastJSONResponse(
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
        middleware = [Middleware(FaultMiddleware, injector=self.injector)]
        return Starlette(routes=routes, middleware=middleware, exception_handlers=bad_request_handlers)


def open_consonance_db(data_dir: Path) -> StateDB:
    return StateDB(data_dir / "consonance.sqlite", CONSONANCE_DDL)
