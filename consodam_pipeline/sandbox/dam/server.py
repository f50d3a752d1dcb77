"""The DAM sandbox as one Starlette app: every resource's routes, fault injection in front."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from consodam_pipeline.sandbox.common import bad_request_handlers, fault_routes
from consodam_pipeline.sandbox.dam.activity import DamActivity
from consodam_pipeline.sandbox.faults import FaultMiddleware
from consodam_pipeline.sandbox.state import DAM_DDL, StateDB


class DamSandbox(DamActivity):
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
        middleware = [Middleware(FaultMiddleware, injector=self.injector)]
        return Starlette(routes=routes, middleware=middleware, exception_handlers=bad_request_handlers)


def open_dam_db(data_dir: Path) -> StateDB:
    return StateDB(data_dir / "dam.sqlite", DAM_DDL)
