"""The resilient HTTP core both clients share.

Every call has a timeout; transient failures (429, 5xx, timeouts, dropped connections, truncated
bodies) are retried with exponential backoff and full jitter, honouring Retry-After; concurrency is
bounded by a semaphore sized like the connection pool. When retries run out the caller gets an
ApiError naming the endpoint and the attempt count, with every configured secret redacted.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeVar

import httpx
from pydantic import ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

log = logging.getLogger("consodam.http")
T = TypeVar("T")
R = TypeVar("R")
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class ApiError(RuntimeError):
    """A call that failed for good: names the endpoint and how many attempts were made."""

    def __init__(self, endpoint: str, attempts: int, reason: str, status: int | None = None) -> None:
        self.endpoint = endpoint
        self.attempts = attempts
        self.status = status
        self.reason = reason
        super().__init__(f"{endpoint} failed after {attempts} attempt(s): {reason}")


class TransientError(Exception):
    def __init__(self, reason: str, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.status = status


class Unauthorized(Exception):
    """A 401: the caller may refresh its credentials once and try again."""


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    base_delay: float = 0.2
    max_delay: float = 10.0
    max_retry_after: float = 60.0  # a server asking for longer than this is treated as an outage


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class Redactor:
    def __init__(self, secrets: Sequence[str]) -> None:
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


class ResilientHttp:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float,
        policy: RetryPolicy,
        max_concurrency: int,
        secrets: Sequence[str] = (),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.policy = policy
        self.redact = Redactor(secrets)
        self.sleep = sleep
        self.client = httpx.Client(
            base_url=base_url,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
        )
        self.slots = threading.BoundedSemaphore(max_concurrency)
        self.retries = 0
        self.requests = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        self.client.close()

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(retry_after, self.policy.max_retry_after)
        ceiling = min(self.policy.max_delay, self.policy.base_delay * 2 ** (state.attempt_number - 1))
        return random.uniform(0, ceiling)  # full jitter

    def _before_sleep(self, state: RetryCallState) -> None:
        with self._lock:
            self.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        log.info("retrying after %s (attempt %d)", self.redact(str(exc)), state.attempt_number)

    def call(
        self,
        method: str,
        path: str,
        *,
        decode: Callable[[httpx.Response], Any] = lambda r: r.json(),
        on_unauthorized: Callable[[], dict[str, str]] | None = None,
        headers: Callable[[], dict[str, str]] = dict,
        **kwargs: Any,
    ) -> Any:
        """One logical call: retried as a whole; `headers()` is re-evaluated per attempt (fresh tokens)."""
        endpoint = f"{method} {path}"
        refreshed = False

        def attempt() -> Any:
            nonlocal refreshed
            try:
                return self._attempt(method, path, headers(), decode, kwargs)
            except Unauthorized:
                if on_unauthorized is None or refreshed:
                    raise
                refreshed = True
                on_unauthorized()
                raise TransientError(
                    "401 Unauthorized; credentials refreshed", retry_after=0.0, status=401
                ) from None

        retrying = Retrying(
            stop=stop_after_attempt(self.policy.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(lambda e: isinstance(e, TransientError)),
            before_sleep=self._before_sleep,
            sleep=self.sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except TransientError as exc:
            raise ApiError(endpoint, self.policy.max_attempts, self.redact(exc.reason), exc.status) from None
        except Unauthorized:
            raise ApiError(endpoint, 1, "401 Unauthorized: check the credentials", 401) from None

    def _attempt(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        decode: Callable[[httpx.Response], Any],
        kwargs: dict[str, Any],
    ) -> Any:
        with self.slots:
            with self._lock:
                self.requests += 1
            try:
                response = self.client.request(method, path, headers=headers, **kwargs)
            except httpx.TimeoutException as exc:
                raise TransientError(f"timed out ({type(exc).__name__})") from None
            except httpx.TransportError as exc:
                raise TransientError(f"connection failed ({type(exc).__name__})") from None
        if response.status_code == 401:
            raise Unauthorized()
        if response.status_code in TRANSIENT_STATUS:
            raise TransientError(
                f"HTTP {response.status_code}",
                retry_after=parse_retry_after(response.headers.get("retry-after")),
                status=response.status_code,
            )
        if response.status_code >= 400:
            detail = self.redact(response.text[:300])
            raise ApiError(
                f"{method} {path}", 1, f"HTTP {response.status_code}: {detail}", response.status_code
            )
        try:
            return decode(response)
        except ValidationError as exc:
            if not any(err["type"] == "json_invalid" for err in exc.errors()):
                first = exc.errors()[0]
                where = ".".join(map(str, first["loc"]))
                raise ApiError(
                    f"{method} {path}", 1, f"unexpected payload at {where}: {first['msg']}"
                ) from None
            raise TransientError("unreadable response body (truncated JSON)") from None
        except (json.JSONDecodeError, ValueError) as exc:
            # A 200 whose body does not parse was cut short on the way: worth another try.
            raise TransientError(f"unreadable response body ({type(exc).__name__})") from None


def prefetch_ordered(pool: Executor, fn: Callable[[T], R], items: Iterable[T], depth: int) -> Iterator[R]:
    """fn over items on a pool, results in input order, at most `depth` in flight (memory stays bounded)."""
    pending = iter(items)
    window: deque[Future[R]] = deque(pool.submit(fn, item) for item in islice(pending, depth))
    while window:
        result = window.popleft().result()
        for item in islice(pending, 1):
            window.append(pool.submit(fn, item))
        yield result
