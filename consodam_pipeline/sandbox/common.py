"""Pieces both sandbox servers share: the admin fault endpoints, JSON helpers, clocks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from consodam_pipeline.domain import timestamps
from consodam_pipeline.sandbox.faults import FaultInjector, FaultRule

now_ts = timestamps.now_ts


def today() -> str:
    return datetime.now(UTC).date().isoformat()


class FastJSONResponse(JSONResponse):
    """Compact UTF-8 JSON like starlette's, rendered by orjson: at 20k works the standard library's
    encoder took a quarter of the Consonance sandbox's time to answer the ingest's product pages."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


class BadRequest(Exception):
    """A request the sandbox cannot read: answered 400 with the reason, as the real services do."""


async def json_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"malformed JSON body: {exc}") from None
    if not isinstance(data, dict):
        raise BadRequest("the body must be a JSON object")
    return data


async def _bad_request(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": "bad_request", "message": str(exc)}, status_code=400)


bad_request_handlers = {BadRequest: _bad_request}


def fault_routes(injector: FaultInjector) -> list[Route]:
    async def faults(request: Request) -> Response:
        if request.method == "DELETE":
            injector.clear()
        elif request.method == "POST":
            body = await json_body(request)
            try:
                injector.add(FaultRule(**body))
            except (TypeError, ValueError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
        return JSONResponse(injector.describe())

    return [Route("/_sandbox/faults", faults, methods=["GET", "POST", "DELETE"])]
