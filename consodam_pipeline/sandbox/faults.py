"""Fault injection for both sandboxes: an ASGI middleware driven from `/_sandbox/faults`.

Modes: 429 (with Retry-After), 500/502/503, slow (reply after the client's timeout), drop (the
connection closes mid-reply), expired_token (401 as if the token lapsed), truncated (a 200 whose JSON
is cut short). Each rule fires at a rate, or for the next N matching requests; a rule matches a path
prefix, and with `body_contains` only requests whose body contains that text (a GraphQL mutation name).
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from dataclasses import asdict, dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

MODES = ("429", "500", "502", "503", "slow", "drop", "expired_token", "truncated")


@dataclass
class FaultRule:
    mode: str
    rate: float = 0.0
    count: int | None = None
    path_prefix: str = "/"
    body_contains: str | None = None
    retry_after: float = 1.0
    delay: float = 5.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown fault mode {self.mode!r}; one of {', '.join(MODES)}")
        if self.count is None and not 0 < self.rate <= 1:
            raise ValueError("a fault needs a rate in (0, 1] or a count")


def route_of(path: str) -> str:
    """A path with its ids left out (`/otmmapi/v6/assets/{id}/contents`): what a request count is kept by."""
    return "/".join("{id}" if part.isdigit() or len(part) >= 16 else part for part in path.split("/"))


class FaultInjector:
    def __init__(self, seed: int = 0) -> None:
        self.rules: list[FaultRule] = []
        self.fired: dict[str, int] = {}
        self.requests = 0
        self.by_route: dict[str, int] = {}
        self.rng = random.Random(seed)
        self.lock = threading.Lock()

    def add(self, rule: FaultRule) -> None:
        with self.lock:
            self.rules.append(rule)

    def clear(self) -> None:
        """Remove every rule and reset the counters."""
        with self.lock:
            self.rules.clear()
            self.fired.clear()

    def describe(self) -> dict[str, Any]:
        with self.lock:
            return {
                "rules": [asdict(r) for r in self.rules],
                "fired": dict(self.fired),
                "requests": self.requests,
                "requests_by_route": dict(self.by_route),
            }

    @property
    def reads_bodies(self) -> bool:
        return any(rule.body_contains for rule in self.rules)

    def pick(self, path: str, body: bytes = b"") -> FaultRule | None:
        with self.lock:
            self.requests += 1
            route = route_of(path)
            self.by_route[route] = self.by_route.get(route, 0) + 1
            for rule in self.rules:
                if not path.startswith(rule.path_prefix):
                    continue
                if rule.body_contains and rule.body_contains.encode() not in body:
                    continue
                if rule.count is not None:
                    if rule.count <= 0:
                        continue
                    rule.count -= 1
                elif self.rng.random() >= rule.rate:
                    continue
                self.fired[rule.mode] = self.fired.get(rule.mode, 0) + 1
                return rule
            self.rules = [r for r in self.rules if r.count is None or r.count > 0]
        return None


class FaultMiddleware:
    """Applies faults to API paths; the admin API under /_sandbox/ is never faulted."""

    def __init__(self, app: ASGIApp, injector: FaultInjector) -> None:
        self.app = app
        self.injector = injector

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/_sandbox"):
            await self.app(scope, receive, send)
            return
        body = b""
        if self.injector.reads_bodies:
            body, receive = await _buffered(receive)
        rule = self.injector.pick(scope["path"], body)
        if rule is None:
            await self.app(scope, receive, send)
        elif rule.mode in ("429", "500", "502", "503", "expired_token"):
            await _error(send, rule)
        elif rule.mode == "slow":
            await asyncio.sleep(rule.delay)
            await self.app(scope, receive, send)
        elif rule.mode == "drop":
            await _drop(send)
        else:
            await self.app(scope, receive, _truncating(send))


async def _buffered(receive: Receive) -> tuple[bytes, Receive]:
    """Read the whole request body, and a `receive` that hands it to the app as if unread."""
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return body, replay


async def _error(send: Send, rule: FaultRule) -> None:
    status = 401 if rule.mode == "expired_token" else int(rule.mode)
    headers = [(b"content-type", b"application/json")]
    body: dict[str, Any] = {"error": {"status": status, "message": "injected fault"}}
    if rule.mode == "429":
        headers.append((b"retry-after", f"{rule.retry_after:g}".encode()))
        body["error"]["message"] = "rate limit exceeded"
    if rule.mode == "expired_token":
        headers.append(
            (b"www-authenticate", b'Bearer error="invalid_token", error_description="token expired"')
        )
        body = {"error": "invalid_token", "error_description": "The access token expired"}
    payload = json.dumps(body).encode()
    headers.append((b"content-length", str(len(payload)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def _drop(send: Send) -> None:
    # Promise a body, send a fragment, then fail: the server closes the socket mid-reply.
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"data": ', "more_body": True})
    raise ConnectionAbortedError("injected dropped connection")


def _truncating(send: Send) -> Send:
    chunks: list[bytes] = []
    start: dict[str, Any] = {}

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        body = b"".join(chunks)
        cut = body[: max(1, len(body) // 2)]
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(cut)).encode()))
        await send({"type": "http.response.start", "status": start["status"], "headers": headers})
        await send({"type": "http.response.body", "body": cut})

    return wrapped
