"""Review tasks (sandbox convention): reviews of one version for a milestone, and requests for a missing
asset; one per natural key; a reviewer's decision is the version's approval."""

from __future__ import annotations

import hashlib
import sqlite3
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from consodam_pipeline.sandbox.common import json_body, now_ts
from consodam_pipeline.sandbox.dam.collections import DamCollections


class DamTasks(DamCollections):
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
        """PUT {"status": "cancelled", "note": …}: close a task nobody needs any more; {"status": "approved" |
        "rejected", "completed_by": …, "note": …}: complete it with a decision a reviewer took elsewhere (on the
        version itself). A full state: repeating it changes nothing."""
        if denied := self.guard(request):
            return denied
        body = await json_body(request)
        if body.get("status") not in ("cancelled", "open", "approved", "rejected"):
            message = "status must be cancelled, open, approved or rejected"
            return JSONResponse({"exception_body": {"message": message}}, status_code=400)
        closed = body["status"] != "open"
        by = body.get("completed_by") or self.client_of(request)
        with self.db.tx() as conn:
            changed = conn.execute(
                "UPDATE review_tasks SET status = ?, note = ?, completed_at = CASE WHEN ? THEN "
                "COALESCE(CASE WHEN status = ? THEN completed_at END, ?) END, completed_by = ? WHERE task_id = ?",
                (
                    body["status"],
                    body.get("note"),
                    closed,
                    body["status"],
                    now_ts(),
                    by if closed else None,
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
