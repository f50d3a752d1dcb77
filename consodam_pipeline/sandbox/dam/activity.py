"""People at work through /_sandbox/ (new versions, approvals, uploads, deletions, usage), the usage log,
and the stats."""

from __future__ import annotations

import random

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from consodam_pipeline.domain.roles import AssetRole
from consodam_pipeline.sandbox.common import json_body, now_ts
from consodam_pipeline.sandbox.dam.shapes import USAGE_CHANNELS, USERS, asset_json, not_found
from consodam_pipeline.sandbox.dam.tasks import DamTasks


class DamActivity(DamTasks):
    # ---- /_sandbox activity ----

    async def admin_new_version(self, request: Request) -> Response:
        body = await json_body(request)
        row = self._asset_row(request.path_params["id"])
        if row is None:
            return not_found(request.path_params["id"])
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
            return not_found(request.path_params["id"])
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
