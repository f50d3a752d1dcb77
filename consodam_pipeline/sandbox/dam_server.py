"""A local OpenText DAM: OAuth2 client credentials under /tenants/{tenant}/oauth2/token, then resources
in the OTMM REST v6 shape under /otmmapi/v6 (assets with nested metadata, offset paging with after/limit,
search conditions, lock → metadata update → unlock, asynchronous jobs, folders, collections, policies).

Conventions where the public record is silent, each named once here:
- approval state lives in metadata fields CONSODAM.FIELD.APPROVAL_* with a tabular history;
- every version is its own asset id sharing `original_asset_id`; `versions=all` lists them all;
- modified-since search is a condition on ARTESIA.FIELD.DATE LAST MODIFIED with operator IS AFTER;
- new versions are POSTed to /assets/{id}/versions (OTMM uses an import-job dance);
- jobs complete on the first poll at least `job_seconds` after creation;
- review tasks live under /otmmapi/v6/reviewtasks: `kind` "review" (a milestone asks reviewers to decide on
  one asset version; the decision is the version's approval) or "request" (a milestone needs an asset that
  is missing or unusable); one task per natural key (asset and milestone, or ISBN, milestone and
  requirement): creating it again reopens it; PUT sets its status (consodam cancels moot ones);
- rendition facts (pixel size, colour space, file size, page count, duration) are metadata fields
  CONSODAM.FIELD.WIDTH_PX, HEIGHT_PX, COLOUR_SPACE, FILE_SIZE, PAGE_COUNT, DURATION_S;
- paging offsets count deleted assets (tombstones), so deletions never shift later pages;
- an import job (POST /assets) or a new version (POST /assets/{id}/versions) may carry the file itself as
  `content` (text, e.g. an ONIX title sheet) and other metadata fields; GET /assets/{id}/contents returns it;
- collection membership: PUT /collections/{id}/assets adds (`{"asset_ids": […]}`), DELETE
  /collections/{id}/assets/{asset_id} removes one;
- the usage log (downloads and deliveries of a version, by a user or a channel) is read with
  GET /otmmapi/v6/usage?after=<seq>&limit=<n>, in the order it happened.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from consodam_pipeline.domain.roles import ApprovalStatus, AssetRole
from consodam_pipeline.sandbox.catalog import asset_uoi
from consodam_pipeline.sandbox.common import fault_routes, json_body, now_ts
from consodam_pipeline.sandbox.faults import FaultInjector, FaultMiddleware
from consodam_pipeline.sandbox.state import DAM_DDL, StateDB

F = "CONSODAM.FIELD."
MODIFIED_FIELD = "ARTESIA.FIELD.DATE LAST MODIFIED"
SEARCHABLE = {
    F + "ISBN": "isbn",
    F + "WORK_ID": "work_id",
    F + "ROLE": "role",
    F + "APPROVAL_STATUS": "approval_status",
}
RENDITION = {
    F + "WIDTH_PX": "width_px",
    F + "HEIGHT_PX": "height_px",
    F + "COLOUR_SPACE": "colour_space",
    F + "FILE_SIZE": "file_size",
    F + "PAGE_COUNT": "page_count",
    F + "DURATION_S": "duration_s",
}
PROTECTED = {
    F + "ROLE",
    F + "WORK_ID",
    F + "APPROVED_BY",
    F + "APPROVED_AT",
    F + "APPROVAL_HISTORY",
    *RENDITION,
}
MAX_LIMIT = 2000
USAGE_CHANNELS = (
    ("web", "download"),
    ("retailer_feed", "delivery"),
    ("social", "download"),
    ("catalog", "download"),
    ("press_kit", "delivery"),
)
USERS = ("marketing@publisher.example", "publicity@publisher.example", "sales@publisher.example")


_FILE_NAME = re.compile(r"(?P<stem>.*?)(?: v[0-9]+)?(?P<ext>\.[A-Za-z0-9]{1,5})?", re.DOTALL)


def versioned_name(name: str, version: int) -> str:
    """A new version's file name, as the catalog names them: `Title front cover v3.jpg`,
    `9780… title sheet v2.xml` (the version before the extension, never twice)."""
    parts = _FILE_NAME.fullmatch(name)
    assert parts is not None  # every part of the pattern is optional
    return f"{parts['stem']} v{version}{parts['ext'] or ''}"


def field(field_id: str, value: Any, kind: str = "string") -> dict[str, Any]:
    return {
        "id": field_id,
        "name": field_id.rsplit(".", 1)[-1].replace("_", " ").title(),
        "type": "com.artesia.metadata.MetadataField",
        "value": {"value": {"type": kind, "value": value}} if value is not None else {"value": None},
    }


def history_table(history: list[dict[str, str]]) -> dict[str, Any]:
    columns = (("STATUS", "status"), ("BY", "by"), ("AT", "at"))
    return {
        "id": F + "APPROVAL_HISTORY",
        "name": "Approval History",
        "type": "com.artesia.metadata.MetadataTableField",
        "metadata_element_list": [
            {
                "id": f"{F}APPROVAL_HISTORY_{col}",
                "values": [{"value": {"type": "string", "value": h[key]}} for h in history],
            }
            for col, key in columns
        ],
    }


def asset_json(row: sqlite3.Row, detail: str = "full") -> dict[str, Any]:
    base = {
        "asset_id": row["asset_id"],
        "original_asset_id": row["original_asset_id"],
        "version": row["version"],
        "latest_version": bool(row["latest"]),
        "date_last_updated": row["modified_at"],
    }
    if detail == "slim":
        return base
    elements = [
        field(F + "ROLE", row["role"]),
        field(F + "ISBN", row["isbn"]),
        field(F + "WORK_ID", row["work_id"]),
        field(F + "APPROVAL_STATUS", row["approval_status"]),
        field(F + "APPROVED_BY", row["approved_by"]),
        field(F + "APPROVED_AT", row["approved_at"], "dateTime"),
        field(F + "LICENSE_FROM", row["license_from"], "date"),
        field(F + "LICENSE_UNTIL", row["license_until"], "date"),
        history_table(json.loads(row["approval_history"])),
        *[
            field(
                fid,
                None
                if row[col] is None
                else f"{row[col]:g}"
                if isinstance(row[col], float)
                else str(row[col]),
            )
            for fid, col in RENDITION.items()
        ],
    ]
    elements += [field(k, v) for k, v in sorted(json.loads(row["extra_metadata"]).items())]
    return {
        **base,
        "name": row["name"],
        "mime_type": row["mime_type"],
        "metadata_model_id": "CONSODAM.MODEL.TITLE_ASSET",
        "date_imported": row["created_at"],
        "asset_state": "NORMAL",
        "deleted": bool(row["deleted"]),
        "locked": row["locked_by"] is not None,
        "security_policy_list": [{"id": p} for p in json.loads(row["security_policies"])],
        "asset_content_info": {
            "master_content": {"id": row["asset_id"], "name": row["name"], "mime_type": row["mime_type"]}
        },
        "metadata": {"metadata_element_list": elements},
    }


class DamSandbox:
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
            return _fault(404, "Tenant not found", "tenant.NotFound")
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
            return _fault(401, "Invalid ApiKey", "oauth.v2.InvalidApiKey")
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

    async def list_assets(self, request: Request) -> Response:
        if denied := self.guard(request):
            return denied
        after, limit, detail = self._paging(request)
        where = "1=1" if request.query_params.get("versions") == "all" else "latest = 1"
        rows, total = self._page(where, (), after, limit)
        return JSONResponse(
            {
                "assets_resource": {
                    "asset_list": [asset_json(r, detail) for r in rows],
                    "total_number_of_items": total,
                }
            }
        )

    async def search(self, request: Request) -> Response:
        if denied := self.guard(request):
            return denied
        params = dict(request.query_params)
        if request.method == "POST":
            params.update({k: v[0] for k, v in parse_qs((await request.body()).decode()).items()})
        after, limit, detail = self._paging(request)
        after, limit = int(params.get("after", after)), int(params.get("limit", limit))
        where, args = ["1=1"], []
        if params.get("versions") != "all":
            where.append("latest = 1")
        if params.get("keyword_query") and params["keyword_query"] != "*":
            where.append("name LIKE ?")
            args.append(f"%{params['keyword_query']}%")
        try:
            conditions = json.loads(params.get("search_condition_list", "{}") or "{}")
            for cond in conditions.get("search_condition_list", {}).get("search_condition", []):
                clause, value = self._condition(cond)
                where.append(clause)
                args.append(value)
        except (ValueError, KeyError) as exc:
            return JSONResponse(
                {"exception_body": {"message": f"bad search condition: {exc}"}}, status_code=400
            )
        selective = any(clause.startswith("modified_at") for clause in where)
        rows, total = self._page(" AND ".join(where), tuple(args), after, limit, selective)
        return JSONResponse(
            {
                "search_result_resource": {
                    "search_result": {
                        "hit_count": len(rows),
                        "total_hit_count": total,
                        "asset_id_list": [r["asset_id"] for r in rows],
                    },
                    "asset_list": [asset_json(r, detail) for r in rows],
                }
            }
        )

    @staticmethod
    def _condition(cond: dict[str, Any]) -> tuple[str, Any]:
        field_id, op, value = cond["metadata_field_id"], cond.get("relational_operator_id", ""), cond["value"]
        if field_id == MODIFIED_FIELD:
            if not op.endswith("IS AFTER"):
                raise ValueError(f"{field_id} supports only IS AFTER")
            return "modified_at > ?", value
        if field_id not in SEARCHABLE:
            raise KeyError(f"field {field_id} is not searchable")
        return f"{SEARCHABLE[field_id]} = ?", value

    def _asset_row(self, asset_id: str) -> sqlite3.Row | None:
        rows = self.db.query("SELECT * FROM assets WHERE asset_id = ? AND deleted = 0", (asset_id,))
        return rows[0] if rows else None

    async def get_asset(self, request: Request) -> Response:
        if denied := self.guard(request):
            return denied
        row = self._asset_row(request.path_params["id"])
        if row is None:
            return _not_found(request.path_params["id"])
        return JSONResponse({"asset_resource": {"asset": asset_json(row)}})

    async def versions(self, request: Request) -> Response:
        if denied := self.guard(request):
            return denied
        row = self._asset_row(request.path_params["id"])
        if row is None:
            return _not_found(request.path_params["id"])
        if request.method == "POST":
            body = await json_body(request)
            job = self._new_job(
                "new_version",
                {
                    "original_asset_id": row["original_asset_id"],
                    "by": self.client_of(request),
                    "content": body.get("content"),
                    "values": body.get("metadata") or {},
                },
            )
            return JSONResponse({"job_handle": {"job_id": job}}, status_code=202)
        rows = self.db.query(
            "SELECT * FROM assets WHERE original_asset_id = ? AND deleted = 0 ORDER BY version",
            (row["original_asset_id"],),
        )
        return JSONResponse({"versions_resource": {"asset_list": [asset_json(r) for r in rows]}})

    async def contents(self, request: Request) -> Response:
        if denied := self.guard(request):
            return denied
        row = self._asset_row(request.path_params["id"])
        if row is None:
            return _not_found(request.path_params["id"])
        stand_in = hashlib.sha256(row["asset_id"].encode()).digest() * 32  # bytes stable per version
        body = row["content"].encode() if row["content"] is not None else stand_in
        return Response(
            body,
            media_type=row["mime_type"],
            headers={"Content-Disposition": f'attachment; filename="{row["name"]}"'},
        )

    # ---- writes ----

    async def state(self, request: Request) -> Response:
        if denied := self.guard(request):
            return denied
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        action = form.get("action")
        try:
            ids = json.loads(form.get("selection_context", "{}"))["selection_context_param"][
                "selection_context"
            ]["asset_ids"]
        except (ValueError, KeyError, TypeError):
            return JSONResponse(
                {"exception_body": {"message": "selection_context with asset_ids required"}}, status_code=400
            )
        if action not in ("lock", "unlock", "check_out"):
            return JSONResponse(
                {"exception_body": {"message": f"unsupported action {action!r}"}}, status_code=400
            )
        client = self.client_of(request)
        ok, failed = [], []
        with self.db.tx() as conn:
            for asset_id in ids:
                row = conn.execute(
                    "SELECT locked_by FROM assets WHERE asset_id = ? AND deleted = 0", (asset_id,)
                ).fetchone()
                if row is None or (row["locked_by"] not in (None, client)):
                    failed.append(
                        {"id": asset_id, "message": "not found" if row is None else "locked by another user"}
                    )
                    continue
                conn.execute(
                    "UPDATE assets SET locked_by = ? WHERE asset_id = ?",
                    (None if action == "unlock" else client, asset_id),
                )
                ok.append(asset_id)
        return JSONResponse(
            {
                "bulk_asset_result_representation": {
                    "bulk_asset_result": {"successful_object_list": ok, "failed_object_list": failed}
                }
            }
        )

    async def update_asset(self, request: Request) -> Response:
        if denied := self.guard(request):
            return denied
        asset_id = request.path_params["id"]
        row = self._asset_row(asset_id)
        if row is None:
            return _not_found(asset_id)
        client = self.client_of(request)
        if row["locked_by"] != client:
            return JSONResponse(
                {"exception_body": {"message": "asset must be locked by you before editing"}}, status_code=409
            )
        try:
            data = (await json_body(request))["edited_asset"]["data"]
        except (ValueError, KeyError) as exc:
            return JSONResponse(
                {"exception_body": {"message": f"edited_asset.data required: {exc}"}}, status_code=400
            )
        extra = json.loads(row["extra_metadata"])
        sets: dict[str, Any] = {}
        for element in data.get("metadata", []):
            fid = element["id"]
            value = (element.get("value") or {}).get("value")
            value = value.get("value") if isinstance(value, dict) else value
            if fid in PROTECTED:
                return JSONResponse({"exception_body": {"message": f"{fid} is read-only"}}, status_code=400)
            if fid == F + "APPROVAL_STATUS":
                sets.update(self._approval_sets(row, str(value), client or "api", now_ts()))
            elif fid in (F + "ISBN", F + "LICENSE_FROM", F + "LICENSE_UNTIL"):
                sets[fid.removeprefix(F).lower()] = value
            elif value is None:
                extra.pop(fid, None)
            else:
                extra[fid] = value
        sets["extra_metadata"] = json.dumps(extra, sort_keys=True)
        if "security_policy_list" in data:
            sets["security_policies"] = json.dumps(sorted(int(p["id"]) for p in data["security_policy_list"]))
        changed = any(row[k] != v for k, v in sets.items())
        if changed:
            sets["modified_at"] = now_ts()
            with self.db.tx() as conn:
                conn.execute(
                    f"UPDATE assets SET {', '.join(f'{k} = ?' for k in sets)} WHERE asset_id = ?",
                    (*sets.values(), asset_id),
                )
        return JSONResponse({"asset_resource": {"asset": asset_json(self._asset_row(asset_id))}})  # type: ignore[arg-type]

    @staticmethod
    def _approval_sets(row: sqlite3.Row, status: str, by: str, at: str) -> dict[str, Any]:
        ApprovalStatus(status)
        history = [*json.loads(row["approval_history"]), {"status": status, "by": by, "at": at}]
        approved = status == ApprovalStatus.APPROVED
        return {
            "approval_status": status,
            "approval_history": json.dumps(history),
            "approved_by": by if approved else None,
            "approved_at": at if approved else None,
            "modified_at": max(at, row["modified_at"]),
        }

    def _new_job(self, kind: str, payload: dict[str, Any]) -> str:
        job_id = str(int(time.time() * 1000)) + secrets.token_hex(3)
        with self.db.tx() as conn:
            conn.execute(
                "INSERT INTO jobs VALUES (?,?,?,?,?,NULL)",
                (job_id, kind, json.dumps(payload), "IN_PROGRESS", time.time()),
            )
        return job_id

    async def create_asset(self, request: Request) -> Response:
        if denied := self.guard(request):
            return denied
        try:
            body = await json_body(request)
            asset = body["asset_representation"]["asset_resource"]["asset"]
            values = {
                e["id"]: e["value"]["value"]["value"] for e in asset["metadata"]["metadata_element_list"]
            }
            AssetRole(values[F + "ROLE"])
        except (ValueError, KeyError, TypeError) as exc:
            return JSONResponse(
                {"exception_body": {"message": f"invalid asset_representation: {exc}"}}, status_code=400
            )
        job = self._new_job(
            "create",
            {
                "name": asset.get("name", "untitled"),
                "values": values,
                "by": self.client_of(request),
                "content": body.get("content"),
                "mime_type": asset.get("mime_type"),
            },
        )
        return JSONResponse({"job_handle": {"job_id": job}}, status_code=202)

    async def job(self, request: Request) -> Response:
        if denied := self.guard(request):
            return denied
        rows = self.db.query("SELECT * FROM jobs WHERE job_id = ?", (request.path_params["id"],))
        if not rows:
            return JSONResponse({"exception_body": {"message": "job not found"}}, status_code=404)
        job = rows[0]
        if job["status"] == "IN_PROGRESS" and time.time() - job["created_at"] >= self.job_seconds:
            asset_id = self._run_job(job["kind"], json.loads(job["payload"]))
            with self.db.tx() as conn:
                conn.execute(
                    "UPDATE jobs SET status = 'COMPLETED', asset_id = ? WHERE job_id = ?",
                    (asset_id, job["job_id"]),
                )
            job = self.db.query("SELECT * FROM jobs WHERE job_id = ?", (job["job_id"],))[0]
        return JSONResponse(
            {
                "job_resource": {
                    "job": {"job_id": job["job_id"], "job_state": job["status"], "asset_id": job["asset_id"]}
                }
            }
        )

    def _run_job(self, kind: str, payload: dict[str, Any]) -> str:
        values = payload["values"]
        if kind == "new_version":
            asset_id = self.add_version(payload["original_asset_id"], payload.get("by") or "api")
        else:
            facts = {"mime_type": payload["mime_type"]} if payload.get("mime_type") else {}
            asset_id = self.add_asset(
                AssetRole(values[F + "ROLE"]),
                values.get(F + "ISBN"),
                values.get(F + "WORK_ID"),
                payload["name"],
                facts,
            )
        self._store_file(asset_id, payload.get("content"), values)
        return asset_id

    def _store_file(self, asset_id: str, content: str | None, values: dict[str, Any]) -> None:
        """A job's file and its other metadata fields (beyond the ones the asset row has columns for)."""
        extra = {k: v for k, v in values.items() if k not in PROTECTED and k not in SEARCHABLE}
        row = self._asset_row(asset_id)
        assert row is not None
        merged = {**json.loads(row["extra_metadata"]), **extra}
        with self.db.tx() as conn:
            conn.execute(
                "UPDATE assets SET content = COALESCE(?, content), extra_metadata = ? WHERE asset_id = ?",
                (content, json.dumps(merged, sort_keys=True), asset_id),
            )

    def add_asset(
        self,
        role: AssetRole,
        isbn: str | None,
        work_id: str | None,
        name: str,
        facts: dict[str, Any] | None = None,
    ) -> str:
        stamp = now_ts()
        asset_id = asset_uoi("created", role, isbn, work_id, name, time.time_ns())
        facts = {k: v for k, v in (facts or {}).items() if k in (*RENDITION.values(), "mime_type")}
        with self.db.tx() as conn:
            conn.execute(
                "INSERT INTO assets (asset_id, original_asset_id, version, latest, name, mime_type, role, isbn, "
                "work_id, folder_id, created_at, modified_at, approval_status, approval_history) "
                "VALUES (?,?,1,1,?,?,?,?,?,'folder-root',?,?,'draft','[]')",
                (asset_id, asset_id, name, "image/jpeg", role.value, isbn, work_id, stamp, stamp),
            )
            if facts:
                conn.execute(
                    f"UPDATE assets SET {', '.join(f'{k} = ?' for k in facts)} WHERE asset_id = ?",
                    (*facts.values(), asset_id),
                )
        return asset_id

    def add_version(self, original_asset_id: str, by: str, facts: dict[str, Any] | None = None) -> str:
        stamp = now_ts()
        with self.db.tx() as conn:
            latest = conn.execute(
                "SELECT * FROM assets WHERE original_asset_id = ? ORDER BY version DESC LIMIT 1",
                (original_asset_id,),
            ).fetchone()
            version = latest["version"] + 1
            asset_id = asset_uoi(original_asset_id, version, time.time_ns())
            conn.execute("UPDATE assets SET latest = 0 WHERE original_asset_id = ?", (original_asset_id,))
            conn.execute(
                "INSERT INTO assets (asset_id, original_asset_id, version, latest, name, mime_type, role, isbn, "
                "work_id, folder_id, created_at, modified_at, approval_status, approval_history, license_from, "
                "license_until, extra_metadata, security_policies, width_px, height_px, colour_space, file_size, "
                "page_count, duration_s, content) VALUES (?,?,?,1,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    asset_id,
                    original_asset_id,
                    version,
                    versioned_name(latest["name"], version),
                    latest["mime_type"],
                    latest["role"],
                    latest["isbn"],
                    latest["work_id"],
                    latest["folder_id"],
                    stamp,
                    stamp,
                    "in_review",
                    json.dumps([{"status": "in_review", "by": by, "at": stamp}]),
                    latest["license_from"],
                    latest["license_until"],
                    latest["extra_metadata"],
                    latest["security_policies"],
                    *[(facts or {}).get(col, latest[col]) for col in RENDITION.values()],
                    latest["content"],
                ),
            )
        return asset_id

    # ---- folders, collections, policies ----

    async def root_folders(self, request: Request) -> Response:
        if denied := self.guard(request):
            return denied
        rows = self.db.query("SELECT * FROM folders WHERE parent_id IS NULL ORDER BY name")
        return JSONResponse(
            {
                "folders_resource": {
                    "folder_list": [{"asset_id": r["folder_id"], "name": r["name"]} for r in rows]
                }
            }
        )

    async def folder(self, request: Request) -> Response:
        if denied := self.guard(request):
            return denied
        folder_id = request.path_params["id"]
        if request.method == "POST":
            body = await json_body(request)
            name = body.get("folder_resource", {}).get("folder", {}).get("name")
            if not name:
                return JSONResponse(
                    {"exception_body": {"message": "folder_resource.folder.name required"}}, status_code=400
                )
            new_id = "folder-" + hashlib.sha1(f"{folder_id}/{name}".encode()).hexdigest()[:12]
            with self.db.tx() as conn:
                conn.execute("INSERT OR IGNORE INTO folders VALUES (?,?,?)", (new_id, name, folder_id))
            return JSONResponse(
                {"folder_resource": {"folder": {"asset_id": new_id, "name": name}}}, status_code=201
            )
        after, limit, detail = self._paging(request)
        subfolders = [
            {"asset_id": r["folder_id"], "name": r["name"], "type": "folder"}
            for r in self.db.query("SELECT * FROM folders WHERE parent_id = ? ORDER BY name", (folder_id,))
        ]
        rows, total = self._page("latest = 1 AND folder_id = ?", (folder_id,), after, limit)
        return JSONResponse(
            {
                "folder_children": {
                    "folder_list": subfolders,
                    "asset_list": [asset_json(r, detail) for r in rows],
                    "total_number_of_items": total,
                }
            }
        )

    async def collections(self, request: Request) -> Response:
        if denied := self.guard(request):
            return denied
        if request.method == "POST":
            name = (await json_body(request)).get("collection_resource", {}).get("collection", {}).get("name")
            if not name:
                return JSONResponse(
                    {"exception_body": {"message": "collection name required"}}, status_code=400
                )
            cid = hashlib.sha1(name.encode()).hexdigest()
            with self.db.tx() as conn:
                conn.execute(
                    "INSERT OR IGNORE INTO collections VALUES (?,?,?,?)",
                    (cid, name, self.client_of(request), now_ts()),
                )
        rows = self.db.query("SELECT * FROM collections ORDER BY name")
        return JSONResponse(
            {
                "collection_resource": {
                    "collection": [
                        {"id": r["collection_id"], "name": r["name"], "owner_name": r["owner_name"]}
                        for r in rows
                    ]
                }
            }
        )

    async def collection_assets(self, request: Request) -> Response:
        if denied := self.guard(request):
            return denied
        cid = request.path_params["id"]
        if not self.db.query("SELECT 1 FROM collections WHERE collection_id = ?", (cid,)):
            return JSONResponse({"exception_body": {"message": "collection not found"}}, status_code=404)
        if request.method == "PUT":
            ids = (await json_body(request)).get("asset_ids", [])
            with self.db.tx() as conn:
                conn.executemany(
                    "INSERT OR IGNORE INTO collection_assets VALUES (?,?)", [(cid, a) for a in ids]
                )
        if request.method == "DELETE":
            with self.db.tx() as conn:
                conn.execute(
                    "DELETE FROM collection_assets WHERE collection_id = ? AND asset_id = ?",
                    (cid, request.path_params["asset_id"]),
                )
        rows = self.db.query(
            "SELECT a.* FROM collection_assets c JOIN assets a ON a.asset_id = c.asset_id "
            "WHERE c.collection_id = ? AND a.deleted = 0 ORDER BY a.asset_id",
            (cid,),
        )
        return JSONResponse(
            {
                "assets_resource": {
                    "asset_list": [
                        {
                            **asset_json(r, "full"),
                            "delivery_service_url": f"/otmmapi/v6/assets/{r['asset_id']}/contents",
                        }
                        for r in rows
                    ]
                }
            }
        )

    async def security_policies(self, request: Request) -> Response:
        if denied := self.guard(request):
            return denied
        rows = self.db.query("SELECT * FROM security_policies ORDER BY id")
        return JSONResponse(
            {
                "security_policies_resource": {
                    "security_policy_list": [
                        {
                            "id": r["id"],
                            "name": r["name"],
                            "description": r["description"],
                            "create_date": r["create_date"],
                            "last_update_date": r["create_date"],
                            "status": "ACTIVE",
                            "ownership_type": "SYSTEM",
                        }
                        for r in rows
                    ]
                }
            }
        )

    # ---- review tasks (sandbox convention) ----

    def _task_json(self, row: sqlite3.Row) -> dict[str, Any]:
        return {
            key: row[key]
            for key in (
                "task_id",
                "kind",
                "asset_id",
                "isbn",
                "milestone",
                "requirement",
                "status",
                "note",
                "created_at",
                "completed_at",
                "completed_by",
            )
        }

    async def review_tasks(self, request: Request) -> Response:
        if denied := self.guard(request):
            return denied
        if request.method == "POST":
            return self._open_task(await json_body(request))
        filters = {k: request.query_params.get(k) for k in ("status", "isbn", "milestone", "kind")}
        clauses = " AND ".join(f"(? IS NULL OR {k} = ?)" for k in filters)
        params = tuple(v for value in filters.values() for v in (value, value))
        rows = self.db.query(
            f"SELECT * FROM review_tasks WHERE {clauses} ORDER BY created_at, task_id", params
        )
        return JSONResponse({"review_tasks": [self._task_json(r) for r in rows]})

    def _open_task(self, body: dict[str, Any]) -> Response:
        kind, milestone = body.get("kind", "review"), body.get("milestone")
        if kind == "review" and self._asset_row(str(body.get("asset_id"))) is not None and milestone:
            key = f"{body['asset_id']}|{milestone}"
        elif kind == "request" and body.get("isbn") and body.get("requirement") and milestone:
            key = f"{body['isbn']}|{milestone}|{body['requirement']}"
        else:
            message = (
                "a review needs asset_id (an existing asset) and milestone; a request needs isbn, milestone "
            )
            return JSONResponse({"exception_body": {"message": message + "and requirement"}}, status_code=400)
        task_id = hashlib.sha1(f"{kind}|{key}".encode()).hexdigest()[:16]
        with self.db.tx() as conn:  # one task per natural key: creating it again reopens it
            conn.execute(
                "INSERT INTO review_tasks (task_id, kind, asset_id, isbn, milestone, requirement, note, status, "
                "created_at) VALUES (?,?,?,?,?,?,?,'open',?) ON CONFLICT(task_id) DO UPDATE SET status = 'open', "
                "note = excluded.note, completed_at = NULL, completed_by = NULL WHERE status != 'open'",
                (
                    task_id,
                    kind,
                    body.get("asset_id"),
                    body.get("isbn"),
                    milestone,
                    body.get("requirement"),
                    body.get("note"),
                    now_ts(),
                ),
            )
        row = self.db.query("SELECT * FROM review_tasks WHERE task_id = ?", (task_id,))[0]
        return JSONResponse({"review_task": self._task_json(row)}, status_code=201)

    async def review_task(self, request: Request) -> Response:
        """PUT {"status": "cancelled", "note": …}: close a task nobody needs any more."""
        if denied := self.guard(request):
            return denied
        body = await json_body(request)
        if body.get("status") not in ("cancelled", "open"):
            return JSONResponse(
                {"exception_body": {"message": "status must be cancelled or open"}}, status_code=400
            )
        with self.db.tx() as conn:
            changed = conn.execute(
                "UPDATE review_tasks SET status = ?, note = ?, completed_at = ?, completed_by = ? WHERE task_id = ?",
                (
                    body["status"],
                    body.get("note"),
                    now_ts() if body["status"] != "open" else None,
                    self.client_of(request),
                    request.path_params["id"],
                ),
            ).rowcount
        if not changed:
            return JSONResponse({"exception_body": {"message": "review task not found"}}, status_code=404)
        row = self.db.query("SELECT * FROM review_tasks WHERE task_id = ?", (request.path_params["id"],))[0]
        return JSONResponse({"review_task": self._task_json(row)})

    async def admin_complete_task(self, request: Request) -> Response:
        """A reviewer decides a review task: `{"status": "approved" | "rejected", "by": …}`; the decision is the
        version's approval decision."""
        body = await json_body(request)
        status, by = body.get("status", "approved"), body.get("by", "reviewer@publisher.example")
        if status not in ("approved", "rejected"):
            return JSONResponse({"error": "status must be approved or rejected"}, status_code=400)
        rows = self.db.query("SELECT * FROM review_tasks WHERE task_id = ?", (request.path_params["id"],))
        if not rows:
            return JSONResponse({"error": "no such task"}, status_code=404)
        stamp = now_ts()
        with self.db.tx() as conn:
            conn.execute(
                "UPDATE review_tasks SET status = ?, completed_at = ?, completed_by = ? WHERE task_id = ?",
                (status, stamp, by, rows[0]["task_id"]),
            )
        asset = self._asset_row(rows[0]["asset_id"]) if rows[0]["asset_id"] else None
        if asset is not None:
            sets = self._approval_sets(asset, status, by, stamp)
            with self.db.tx() as conn:
                conn.execute(
                    f"UPDATE assets SET {', '.join(f'{k} = ?' for k in sets)} WHERE asset_id = ?",
                    (*sets.values(), asset["asset_id"]),
                )
        row = self.db.query("SELECT * FROM review_tasks WHERE task_id = ?", (rows[0]["task_id"],))[0]
        return JSONResponse({"review_task": self._task_json(row)})

    # ---- /_sandbox activity ----

    async def admin_new_version(self, request: Request) -> Response:
        body = await json_body(request)
        row = self._asset_row(request.path_params["id"])
        if row is None:
            return _not_found(request.path_params["id"])
        return JSONResponse(
            {
                "asset_id": self.add_version(
                    row["original_asset_id"], body.get("by", "designer"), body.get("facts")
                )
            }
        )

    async def admin_approval(self, request: Request) -> Response:
        body = await json_body(request)
        row = self._asset_row(request.path_params["id"])
        if row is None:
            return _not_found(request.path_params["id"])
        try:
            sets = self._approval_sets(
                row,
                body.get("status", "approved"),
                body.get("by", "approver@publisher.example"),
                body.get("at") or now_ts(),
            )
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        with self.db.tx() as conn:
            conn.execute(
                f"UPDATE assets SET {', '.join(f'{k} = ?' for k in sets)} WHERE asset_id = ?",
                (*sets.values(), row["asset_id"]),
            )
        return JSONResponse({"asset": asset_json(self._asset_row(row["asset_id"]))})  # type: ignore[arg-type]

    async def admin_create(self, request: Request) -> Response:
        body = await json_body(request)
        try:
            role = AssetRole(body["role"])
        except (KeyError, ValueError) as exc:
            return JSONResponse({"error": f"role required: {exc}"}, status_code=400)
        asset_id = self.add_asset(
            role,
            body.get("isbn"),
            body.get("work_id"),
            body.get("name", f"new {role.value}"),
            body.get("facts"),
        )
        return JSONResponse({"asset_id": asset_id})

    async def admin_delete(self, request: Request) -> Response:
        with self.db.tx() as conn:
            n = conn.execute(
                "UPDATE assets SET deleted = 1, modified_at = ? WHERE asset_id = ?",
                (now_ts(), request.path_params["id"]),
            ).rowcount
        return JSONResponse({"deleted": n})

    async def admin_activity(self, request: Request) -> Response:
        """People at work on N random assets: new versions uploaded, pending versions approved or rejected."""
        body = await json_body(request)
        count, rng = int(body.get("changes", 10)), random.Random(body.get("seed", 0))
        max_seq = self.db.query("SELECT MAX(seq) AS m FROM assets")[0]["m"] or 0
        touched = []
        for seq in sorted(set(rng.sample(range(1, max_seq + 1), min(count, max_seq)))):
            rows = self.db.query("SELECT * FROM assets WHERE seq = ? AND deleted = 0", (seq,))
            if not rows:
                continue
            row = rows[0]
            if rng.random() < 0.5:
                touched.append(self.add_version(row["original_asset_id"], "designer@publisher.example"))
            else:
                status = rng.choice(("approved", "approved", "rejected"))
                sets = self._approval_sets(row, status, "approver@publisher.example", now_ts())
                with self.db.tx() as conn:
                    conn.execute(
                        f"UPDATE assets SET {', '.join(f'{k} = ?' for k in sets)} WHERE asset_id = ?",
                        (*sets.values(), row["asset_id"]),
                    )
                touched.append(row["asset_id"])
        used = self.simulate_usage(rng, int(body.get("usage", count)))
        return JSONResponse({"changed_asset_ids": touched, "usage_recorded": used})

    def simulate_usage(self, rng: random.Random, count: int) -> int:
        """Approved versions downloaded or delivered by people and channels (the usage log)."""
        approved = [
            r["asset_id"]
            for r in self.db.query(
                "SELECT asset_id FROM assets WHERE approval_status = 'approved' AND deleted = 0 ORDER BY seq"
            )
        ]
        for asset_id in rng.sample(approved, min(count, len(approved))):
            channel, action = rng.choice(USAGE_CHANNELS)
            self.record_usage(asset_id, rng.choice(USERS), channel, action)
        return min(count, len(approved))

    async def usage(self, request: Request) -> Response:
        if denied := self.guard(request):
            return denied
        after, limit, _ = self._paging(request)
        rows = self.db.query("SELECT * FROM usage_log WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit))
        return JSONResponse({"usage_resource": {"usage_list": [dict(r) for r in rows]}})

    def record_usage(self, asset_id: str, by: str, channel: str, action: str, at: str | None = None) -> int:
        with self.db.tx() as conn:
            cur = conn.execute(
                "INSERT INTO usage_log (asset_id, used_by, channel, action, used_at) VALUES (?,?,?,?,?)",
                (asset_id, by, channel, action, at or now_ts()),
            )
        return int(cur.lastrowid or 0)

    async def admin_usage(self, request: Request) -> Response:
        """Someone downloads or delivers a version: `{"asset_id", "by", "channel", "action", "at"}`."""
        body = await json_body(request)
        if self._asset_row(str(body.get("asset_id"))) is None:
            return JSONResponse({"error": "asset_id of an existing asset is required"}, status_code=400)
        seq = self.record_usage(
            body["asset_id"],
            body.get("by", "marketing@publisher.example"),
            body.get("channel", "web"),
            body.get("action", "download"),
            body.get("at"),
        )
        return JSONResponse({"seq": seq})

    async def admin_stats(self, _request: Request) -> Response:
        counts = {
            "asset_versions": self.db.query("SELECT COUNT(*) AS n FROM assets WHERE deleted = 0")[0]["n"],
            "assets": self.db.query("SELECT COUNT(*) AS n FROM assets WHERE deleted = 0 AND latest = 1")[0][
                "n"
            ],
            "collections": self.db.query("SELECT COUNT(*) AS n FROM collections")[0]["n"],
        }
        return JSONResponse(
            {
                "counts": counts,
                "faults": self.injector.describe(),
                "catalog": {k: self.db.meta(k) for k in ("works", "seed", "anchor", "dirt_rate")},
            }
        )

    def app(self) -> Starlette:
        v6 = "/otmmapi/v6"
        routes = [
            Route("/tenants/{tenant}/oauth2/token", self.token, methods=["POST"]),
            Route(f"{v6}/assets", self.list_assets, methods=["GET"]),
            Route(f"{v6}/assets", self.create_asset, methods=["POST"]),
            Route(f"{v6}/assets/state", self.state, methods=["PUT"]),
            Route(f"{v6}/assets/{{id}}", self.get_asset, methods=["GET"]),
            Route(f"{v6}/assets/{{id}}", self.update_asset, methods=["PATCH"]),
            Route(f"{v6}/assets/{{id}}/versions", self.versions, methods=["GET", "POST"]),
            Route(f"{v6}/assets/{{id}}/contents", self.contents, methods=["GET"]),
            Route(f"{v6}/search/text", self.search, methods=["GET", "POST"]),
            Route(f"{v6}/jobs/{{id}}", self.job, methods=["GET"]),
            Route(f"{v6}/folders/rootfolders", self.root_folders, methods=["GET"]),
            Route(f"{v6}/folders/{{id}}", self.folder, methods=["POST"]),
            Route(f"{v6}/folders/{{id}}/children", self.folder, methods=["GET"]),
            Route(f"{v6}/collections", self.collections, methods=["GET", "POST"]),
            Route(f"{v6}/collections/{{id}}/assets", self.collection_assets, methods=["GET", "PUT"]),
            Route(f"{v6}/collections/{{id}}/assets/{{asset_id}}", self.collection_assets, methods=["DELETE"]),
            Route(f"{v6}/usage", self.usage, methods=["GET"]),
            Route("/_sandbox/usage", self.admin_usage, methods=["POST"]),
            Route(f"{v6}/securitypolicies", self.security_policies, methods=["GET"]),
            Route(f"{v6}/reviewtasks", self.review_tasks, methods=["GET", "POST"]),
            Route(f"{v6}/reviewtasks/{{id}}", self.review_task, methods=["PUT"]),
            Route("/_sandbox/reviewtasks/{id}/complete", self.admin_complete_task, methods=["POST"]),
            Route("/_sandbox/assets", self.admin_create, methods=["POST"]),
            Route("/_sandbox/assets/{id}", self.admin_delete, methods=["DELETE"]),
            Route("/_sandbox/assets/{id}/versions", self.admin_new_version, methods=["POST"]),
            Route("/_sandbox/assets/{id}/approval", self.admin_approval, methods=["POST"]),
            Route("/_sandbox/activity", self.admin_activity, methods=["POST"]),
            Route("/_sandbox/stats", self.admin_stats, methods=["GET"]),
            *fault_routes(self.injector),
        ]
        return Starlette(routes=routes, middleware=[Middleware(FaultMiddleware, injector=self.injector)])


def _fault(status: int, message: str, code: str) -> JSONResponse:
    return JSONResponse(
        {"fault": {"faultstring": message, "detail": {"errorcode": code}}}, status_code=status
    )


def _not_found(asset_id: str) -> JSONResponse:
    return JSONResponse(
        {"exception_body": {"message": f"asset {asset_id} not found", "http_response_code": 404}},
        status_code=404,
    )


def open_dam_db(data_dir: Path) -> StateDB:
    return StateDB(data_dir / "dam.sqlite", DAM_DDL)
