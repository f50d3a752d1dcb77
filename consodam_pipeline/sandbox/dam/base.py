"""Auth (OAuth2 client credentials, bearer tokens that expire) and paging, shared by every DAM resource."""

from __future__ import annotations

import base64
import secrets
import sqlite3
import time
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from consodam_pipeline.sandbox.dam.shapes import MAX_LIMIT, fault
from consodam_pipeline.sandbox.faults import FaultInjector
from consodam_pipeline.sandbox.state import StateDB


class DamBase:
    def __init__(
        self,
        db: StateDB,
        tenant: str,
        client_id: str,
        client_secret: str,
        injector: FaultInjector | None = None,
        token_ttl: int = 3600,
        job_seconds: float = 0.2,
    ) -> None:
        self.db = db
        self.tenant = tenant
        self.client_id = client_id
        self.client_secret = client_secret
        self.injector = injector or FaultInjector()
        self.token_ttl = token_ttl
        self.job_seconds = job_seconds
        self.tokens: dict[str, tuple[str, float]] = {}

    # ---- auth ----

    async def token(self, request: Request) -> Response:
        if request.path_params["tenant"] != self.tenant:
            return fault(404, "Tenant not found", "tenant.NotFound")
        form = parse_qs((await request.body()).decode())
        client_id = form.get("client_id", [None])[0]
        secret = form.get("client_secret", [None])[0]
        header = request.headers.get("authorization", "")
        if header.startswith("Basic "):
            try:
                client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                client_id = secret = None
        if form.get("grant_type", [None])[0] != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if client_id != self.client_id or not secrets.compare_digest(secret or "", self.client_secret):
            return fault(401, "Invalid ApiKey", "oauth.v2.InvalidApiKey")
        token = secrets.token_urlsafe(32)
        self.tokens[token] = (client_id, time.time() + self.token_ttl)
        return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": self.token_ttl})

    def client_of(self, request: Request) -> str | None:
        header = request.headers.get("authorization", "")
        entry = self.tokens.get(header[7:]) if header.startswith("Bearer ") else None
        if entry is None or entry[1] < time.time():
            return None
        return entry[0]

    def guard(self, request: Request) -> Response | None:
        if self.client_of(request) is None:
            return JSONResponse(
                {"error": "invalid_token", "error_description": "missing, unknown or expired token"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        return None

    # ---- reads ----

    def _page(
        self, where: str, params: tuple[Any, ...], after: int, limit: int, selective: bool = False
    ) -> tuple[list[sqlite3.Row], int]:
        """Offsets and the total count tombstones too, so deleting an asset never shifts later pages.

        `selective`: the filter matches few rows through an index (modified-since). Left alone, SQLite
        walks every row in seq order to avoid a sort; selecting the matches first and sorting them is
        what a changes feed needs."""
        total = self.db.query(f"SELECT COUNT(*) AS n FROM assets WHERE {where}", params)[0]["n"]
        if where == "1=1":
            # seq is dense (AUTOINCREMENT, rows are never physically deleted), so offset k is seq > k: an
            # index seek instead of stepping over k rows.
            rows = self.db.query("SELECT * FROM assets WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit))
        elif selective:
            rows = self.db.query(
                f"SELECT * FROM assets WHERE seq IN (SELECT seq FROM assets WHERE {where}) "
                "ORDER BY seq LIMIT ? OFFSET ?",
                (*params, limit, after),
            )
        else:
            rows = self.db.query(
                f"SELECT * FROM assets WHERE {where} ORDER BY seq LIMIT ? OFFSET ?", (*params, limit, after)
            )
        return [r for r in rows if not r["deleted"]], total

    @staticmethod
    def _paging(request: Request) -> tuple[int, int, str]:
        after = max(0, int(request.query_params.get("after", "0")))
        limit = int(request.query_params.get("limit", "100"))
        limit = MAX_LIMIT if limit <= 0 else min(limit, MAX_LIMIT)
        detail = "slim" if request.query_params.get("level_of_detail") == "slim" else "full"
        return after, limit, detail

    def _asset_row(self, asset_id: str) -> sqlite3.Row | None:
        rows = self.db.query("SELECT * FROM assets WHERE asset_id = ? AND deleted = 0", (asset_id,))
        return rows[0] if rows else None
