"""Folders, collections (members paged with after/limit) and security policies."""

from __future__ import annotations

import hashlib

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from consodam_pipeline.sandbox.common import json_body, now_ts
from consodam_pipeline.sandbox.dam.assets import DamAssets
from consodam_pipeline.sandbox.dam.shapes import asset_json


class DamCollections(DamAssets):
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
        # Paged like every OTMM list: `after` (an offset) and `limit` (the same default as the asset lists).
        after, limit, detail = self._paging(request)
        members = (
            "FROM collection_assets c JOIN assets a ON a.asset_id = c.asset_id "
            "WHERE c.collection_id = ? AND a.deleted = 0"
        )
        total = self.db.query(f"SELECT COUNT(*) AS n {members}", (cid,))[0]["n"]
        rows = self.db.query(
            f"SELECT a.* {members} ORDER BY a.asset_id LIMIT ? OFFSET ?", (cid, limit, after)
        )
        listed = [
            {**asset_json(r, detail), "delivery_service_url": f"/otmmapi/v6/assets/{r['asset_id']}/contents"}
            for r in rows
        ]
        return JSONResponse({"assets_resource": {"asset_list": listed, "total_number_of_items": total}})

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
