"""Assets: listing, search, one asset, its versions and contents; locks, metadata updates, import jobs, new
versions."""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import time
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from consodam_pipeline.domain.roles import ApprovalStatus, AssetRole
from consodam_pipeline.sandbox.catalog import asset_uoi
from consodam_pipeline.sandbox.common import json_body, now_ts
from consodam_pipeline.sandbox.dam.base import DamBase
from consodam_pipeline.sandbox.dam.shapes import (
    MODIFIED_FIELD,
    PROTECTED,
    RENDITION,
    SEARCHABLE,
    F,
    asset_json,
    not_found,
    versioned_name,
)


class DamAssets(DamBase):
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

    async def get_asset(self, request: Request) -> Response:
        if denied := self.guard(request):
            return denied
        row = self._asset_row(request.path_params["id"])
        if row is None:
            return not_found(request.path_params["id"])
        return JSONResponse({"asset_resource": {"asset": asset_json(row)}})

    async def versions(self, request: Request) -> Response:
        if denied := self.guard(request):
            return denied
        row = self._asset_row(request.path_params["id"])
        if row is None:
            return not_found(request.path_params["id"])
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
            return not_found(request.path_params["id"])
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
            return not_found(asset_id)
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
