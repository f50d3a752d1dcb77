"""OpenText DAM client: OAuth2 client credentials, OTMM v6 offset paging, search, lock/update/unlock, jobs."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import polars as pl

from consodam_pipeline import endpoints
from consodam_pipeline.clients.dam_models import (
    MODIFIED_FIELD,
    AssetPage,
    AssetsResponse,
    DamAsset,
    ReviewTask,
    ReviewTaskReply,
    ReviewTasks,
    SearchResponse,
    Token,
    UsageReply,
    UsageRow,
    decode_page,
)
from consodam_pipeline.clients.http import ApiError, ResilientHttp, prefetch_ordered
from consodam_pipeline.clients.resource import HttpApiResource


def condition(field_id: str, value: Any, operator: str = "ARTESIA.OPERATOR.CHAR.IS") -> dict[str, Any]:
    return {
        "type": "com.artesia.search.SearchScalarCondition",
        "metadata_field_id": field_id,
        "relational_operator_id": operator,
        "value": value,
    }


def content_url(dam_url: str, asset_id: str) -> str:
    """Where a version's file is served: what a reference to it in Consonance or a title sheet points at."""
    return f"{dam_url.rstrip('/')}/otmmapi/v6/assets/{asset_id}/contents"


def modified_after(timestamp: str) -> dict[str, Any]:
    """Sandbox convention for modified-since: the DAM's public record documents no such filter."""
    return condition(MODIFIED_FIELD, timestamp, "ARTESIA.OPERATOR.DATE.IS AFTER")


# Access tokens this process holds, by (DAM, tenant, client, secret's digest): each sensor tick and each step
# opens a client, and a token per client would double the requests a probe makes. A 401 replaces it.
_TOKENS: dict[tuple[str, str, str, str], tuple[str, float]] = {}
_TOKENS_LOCK = threading.Lock()


class DamClient:
    REFRESH_MARGIN_S = 30.0

    def __init__(
        self,
        http: ResilientHttp,
        tenant: str,
        client_id: str,
        client_secret: str,
        page_size: int,
        job_poll_s: float = 0.1,
        job_timeout_s: float = 60.0,
    ) -> None:
        self.http = http
        self.tenant = tenant
        self.client_id = client_id
        self.client_secret = client_secret
        self.page_size = page_size
        self.job_poll_s = job_poll_s
        self.job_timeout_s = job_timeout_s
        self._token: str | None = None
        self._expires_at = 0.0
        self._token_lock = threading.Lock()
        self.token_fetches = 0
        secret_digest = hashlib.sha256(client_secret.encode()).hexdigest()[:16]
        self._shared_key = (str(http.client.base_url), tenant, client_id, secret_digest)

    def __enter__(self) -> DamClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.http.close()

    # ---- auth ----

    def _fetch_token(self) -> None:
        token: Token = self.http.call(
            "POST",
            f"/tenants/{self.tenant}/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": self.client_id,
                "client_secret": self.client_secret,
            },
            decode=lambda r: Token.model_validate_json(r.content),
        )
        self._token = token.access_token
        self._expires_at = time.monotonic() + token.expires_in
        self.http.redact.secrets.append(token.access_token)
        self.token_fetches += 1
        with _TOKENS_LOCK:
            _TOKENS[self._shared_key] = (self._token, self._expires_at)

    def _fresh(self) -> bool:
        return self._token is not None and time.monotonic() < self._expires_at - self.REFRESH_MARGIN_S

    def auth_headers(self) -> dict[str, str]:
        with self._token_lock:
            if not self._fresh():
                with _TOKENS_LOCK:
                    self._token, self._expires_at = _TOKENS.get(self._shared_key, (None, 0.0))
                if self._fresh():
                    self.http.redact.secrets.append(str(self._token))
                else:
                    self._fetch_token()
            return {"Authorization": f"Bearer {self._token}"}

    def _refresh(self) -> dict[str, str]:
        with self._token_lock:
            self._fetch_token()
            return {"Authorization": f"Bearer {self._token}"}

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.http.call(
            method, f"/otmmapi/v6{path}", headers=self.auth_headers, on_unauthorized=self._refresh, **kwargs
        )

    # ---- reads ----

    def _params(self, after: int, all_versions: bool, slim: bool) -> dict[str, Any]:
        params: dict[str, Any] = {"after": after, "limit": self.page_size, "load_type": "metadata"}
        if all_versions:
            params["versions"] = "all"
        if slim:
            params["level_of_detail"] = "slim"
        return params

    def assets_page(self, after: int, *, all_versions: bool = True, slim: bool = False) -> AssetsResponse:
        result: AssetsResponse = self.call(
            "GET",
            "/assets",
            params=self._params(after, all_versions, slim),
            decode=lambda r: AssetsResponse.model_validate_json(r.content),
        )
        return result

    def asset_frame_page(self, after: int, *, all_versions: bool = True) -> AssetPage:
        page: AssetPage = self.call(
            "GET",
            "/assets",
            params=self._params(after, all_versions, False),
            decode=lambda r: decode_page(r.text),
        )
        return page

    def iter_asset_frames(self, *, all_versions: bool = True, parallel: int = 2) -> Iterator[pl.DataFrame]:
        """Every asset (version) as column pages, in order; later offsets are fetched ahead in parallel."""
        first = self.asset_frame_page(0, all_versions=all_versions)
        yield first.assets
        offsets = range(self.page_size, first.total, self.page_size)

        def fetch(offset: int) -> pl.DataFrame:
            return self.asset_frame_page(offset, all_versions=all_versions).assets

        with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="dam-pages") as pool:
            yield from prefetch_ordered(pool, fetch, offsets, depth=parallel * 2)

    def _search_params(
        self, conditions: Sequence[dict[str, Any]], after: int, all_versions: bool, slim: bool
    ) -> dict[str, Any]:
        return {
            **self._params(after, all_versions, slim),
            "keyword_query": "*",
            "search_condition_list": json.dumps(
                {"search_condition_list": {"search_condition": list(conditions)}}
            ),
        }

    def search_page(
        self,
        conditions: Sequence[dict[str, Any]],
        after: int,
        *,
        all_versions: bool = True,
        slim: bool = False,
    ) -> SearchResponse:
        result: SearchResponse = self.call(
            "GET",
            "/search/text",
            params=self._search_params(conditions, after, all_versions, slim),
            decode=lambda r: SearchResponse.model_validate_json(r.content),
        )
        return result

    def search(
        self, conditions: Sequence[dict[str, Any]], *, all_versions: bool = True, slim: bool = False
    ) -> Iterator[DamAsset]:
        after = 0
        while True:
            page = self.search_page(conditions, after, all_versions=all_versions, slim=slim)
            yield from page.search_result_resource.asset_list
            after += self.page_size
            if after >= page.search_result_resource.search_result.total_hit_count:
                return

    def search_frames(
        self, conditions: Sequence[dict[str, Any]], *, all_versions: bool = True
    ) -> Iterator[pl.DataFrame]:
        after = 0
        while True:
            page: AssetPage = self.call(
                "GET",
                "/search/text",
                params=self._search_params(conditions, after, all_versions, False),
                decode=lambda r: decode_page(r.text, search=True),
            )
            yield page.assets
            after += self.page_size
            if after >= page.total:
                return

    def get_asset(self, asset_id: str) -> DamAsset:
        asset: DamAsset = self.call(
            "GET",
            f"/assets/{asset_id}",
            decode=lambda r: DamAsset.model_validate(r.json()["asset_resource"]["asset"]),
        )
        return asset

    # ---- writes ----

    def _state(self, action: str, asset_ids: Sequence[str]) -> dict[str, Any]:
        selection = {
            "selection_context_param": {
                "selection_context": {
                    "type": "com.artesia.asset.selection.AssetIdsSelectionContext",
                    "asset_ids": list(asset_ids),
                    "child_type": "ASSETS",
                    "include_descendants": "NONE",
                }
            }
        }
        result: dict[str, Any] = self.call(
            "PUT",
            "/assets/state",
            data={"action": action, "selection_context": json.dumps(selection)},
            decode=lambda r: dict(r.json()["bulk_asset_result_representation"]["bulk_asset_result"]),
        )
        return result

    @contextmanager
    def locked(self, asset_ids: Sequence[str]) -> Iterator[list[str]]:
        """Lock, yield what we hold, always unlock — the OTMM edit protocol. Locking what we already
        hold succeeds, so repeating it is safe."""
        result = self._state("lock", asset_ids)
        held = list(result["successful_object_list"])
        try:
            yield held
        finally:
            if held:
                self._state("unlock", held)

    def update_metadata(
        self, asset_id: str, values: dict[str, Any], security_policy_ids: Sequence[int] | None = None
    ) -> DamAsset:
        """Set these fields (None clears one) and policies: a full state, so repeating it is safe."""
        data: dict[str, Any] = {
            "asset_identifier": asset_id,
            "metadata": [
                {
                    "id": fid,
                    "type": "com.artesia.metadata.MetadataField",
                    "value": {"value": {"type": "string", "value": value}},
                }
                for fid, value in values.items()
            ],
        }
        if security_policy_ids is not None:
            data["security_policy_list"] = [{"id": p} for p in security_policy_ids]
        asset: DamAsset = self.call(
            "PATCH",
            f"/assets/{asset_id}",
            json={"edited_asset": {"data": data}},
            decode=lambda r: DamAsset.model_validate(r.json()["asset_resource"]["asset"]),
        )
        return asset

    # ---- asynchronous jobs, imports ----

    def wait_job(self, job_id: str) -> str:
        """Poll an asynchronous job until it completes; the asset it made."""
        deadline = time.monotonic() + self.job_timeout_s
        while time.monotonic() < deadline:
            job = self.call("GET", f"/jobs/{job_id}", decode=lambda r: dict(r.json()["job_resource"]["job"]))
            if job["job_state"] == "COMPLETED":
                return str(job["asset_id"])
            if job["job_state"] in ("FAILED", "CANCELLED"):
                raise ApiError(f"GET /otmmapi/v6/jobs/{job_id}", 1, f"job ended {job['job_state']}")
            time.sleep(self.job_poll_s)
        raise ApiError(f"GET /otmmapi/v6/jobs/{job_id}", 1, f"job not done after {self.job_timeout_s:.0f}s")

    def import_asset(self, *, name: str, mime_type: str, metadata: dict[str, str], content: str) -> str:
        """A new asset with its file (an import job); not idempotent: after an ambiguous failure the caller
        looks it up. Returns the new asset's id once the job is done."""
        elements = [
            {"id": k, "value": {"value": {"type": "string", "value": v}}} for k, v in metadata.items()
        ]
        body = {
            "asset_representation": {
                "asset_resource": {
                    "asset": {
                        "name": name,
                        "mime_type": mime_type,
                        "metadata": {"metadata_element_list": elements},
                    }
                }
            },
            "content": content,
        }
        job = self.call(
            "POST",
            "/assets",
            json=body,
            idempotent=False,
            decode=lambda r: str(r.json()["job_handle"]["job_id"]),
        )
        return self.wait_job(job)

    def import_version(self, asset_id: str, *, metadata: dict[str, str], content: str) -> str:
        """A new version of an asset with its file; not idempotent (see import_asset)."""
        job = self.call(
            "POST",
            f"/assets/{asset_id}/versions",
            json={"content": content, "metadata": metadata},
            idempotent=False,
            decode=lambda r: str(r.json()["job_handle"]["job_id"]),
        )
        return self.wait_job(job)

    def content(self, asset_id: str) -> str:
        text: str = self.call("GET", f"/assets/{asset_id}/contents", decode=lambda r: r.text)
        return text

    # ---- collections ----

    def collections(self) -> dict[str, str]:
        """name → collection id."""
        listed: list[dict[str, Any]] = self.call(
            "GET", "/collections", decode=lambda r: list(r.json()["collection_resource"]["collection"])
        )
        return {str(c["name"]): str(c["id"]) for c in listed}

    def create_collection(self, name: str) -> str:
        """Not idempotent in OTMM (two creates, two collections): the caller looks the name up first."""
        body = {"collection_resource": {"collection": {"name": name}}}
        listed: list[dict[str, Any]] = self.call(
            "POST",
            "/collections",
            json=body,
            idempotent=False,
            decode=lambda r: list(r.json()["collection_resource"]["collection"]),
        )
        return next(str(c["id"]) for c in listed if c["name"] == name)

    def collection_assets(self, collection_id: str) -> list[str]:
        """Every member of a collection, page by page (`after`/`limit`, as OTMM pages its lists)."""
        ids: list[str] = []
        while True:
            page: list[str] = self.call(
                "GET",
                f"/collections/{collection_id}/assets",
                params={"after": len(ids), "limit": self.page_size, "level_of_detail": "slim"},
                decode=lambda r: [a["asset_id"] for a in r.json()["assets_resource"]["asset_list"]],
            )
            ids += page
            if len(page) < self.page_size:
                return ids

    def add_to_collection(self, collection_id: str, asset_ids: Sequence[str]) -> None:
        """Adding a member twice keeps one: safe to repeat."""
        self.call("PUT", f"/collections/{collection_id}/assets", json={"asset_ids": list(asset_ids)})

    def remove_from_collection(self, collection_id: str, asset_id: str) -> None:
        self.call("DELETE", f"/collections/{collection_id}/assets/{asset_id}")

    # ---- the usage log (sandbox convention) ----

    def usage_page(self, after: int, limit: int = 1000) -> list[UsageRow]:
        rows: list[UsageRow] = self.call(
            "GET",
            "/usage",
            params={"after": after, "limit": limit},
            decode=lambda r: UsageReply.model_validate_json(r.content).usage_resource.usage_list,
        )
        return rows

    # ---- review tasks (sandbox convention) ----

    def review_tasks(self, status: str | None = None) -> list[ReviewTask]:
        params = {"status": status} if status else {}
        found: ReviewTasks = self.call(
            "GET", "/reviewtasks", params=params, decode=lambda r: ReviewTasks.model_validate_json(r.content)
        )
        return found.review_tasks

    def open_review_task(self, **fields: Any) -> ReviewTask:
        """Not idempotent: an ambiguous failure raises AmbiguousWrite, and the caller looks it up."""
        reply: ReviewTaskReply = self.call(
            "POST",
            "/reviewtasks",
            json=fields,
            idempotent=False,
            decode=lambda r: ReviewTaskReply.model_validate_json(r.content),
        )
        return reply.review_task

    def complete_review_task(self, task_id: str, decision: str, by: str | None, note: str) -> ReviewTask:
        """Complete a task with a decision a reviewer took on the version itself: a full state, safe to repeat."""
        reply: ReviewTaskReply = self.call(
            "PUT",
            f"/reviewtasks/{task_id}",
            json={"status": decision, "completed_by": by, "note": note},
            decode=lambda r: ReviewTaskReply.model_validate_json(r.content),
        )
        return reply.review_task

    def cancel_review_task(self, task_id: str, note: str) -> ReviewTask:
        """Close a task nobody needs any more: a full state, so repeating it is safe."""
        reply: ReviewTaskReply = self.call(
            "PUT",
            f"/reviewtasks/{task_id}",
            json={"status": "cancelled", "note": note},
            decode=lambda r: ReviewTaskReply.model_validate_json(r.content),
        )
        return reply.review_task


class OpenTextDamResource(HttpApiResource):
    """OpenText DAM API access; defaults point at the local sandbox."""

    url: str = endpoints.DAM_URL
    tenant: str = endpoints.DAM_TENANT
    client_id: str = endpoints.DAM_CLIENT_ID
    client_secret: str = endpoints.DAM_CLIENT_SECRET
    page_size: int = 1000

    def client(self) -> DamClient:
        http = self.http(self.client_secret)
        return DamClient(http, self.tenant, self.client_id, self.client_secret, self.page_size)
