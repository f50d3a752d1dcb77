"""The resilient HTTP core both clients share.

Every call has a timeout and bounded concurrency (a semaphore sized like the connection pool). What is
retried depends on whether the call may be repeated:
- an idempotent call (a read, a PUT/PATCH of a full state, a delete) is retried on every transient
  failure (429, 5xx, timeouts, dropped connections, cut-short bodies) with exponential backoff and full
  jitter, honouring Retry-After;
- a call that is not (a create) is retried only where the server cannot have acted on it (the connection
  never opened, 429, an expired token). Any other failure leaves it open whether the server applied it:
  that is an `AmbiguousWrite`, raised at once, and the caller looks the item up before trying again.
A body that parses but does not have the expected shape is the API changing under us, not the network:
an `ApiError` at once. When retries run out the caller gets an ApiError naming the endpoint and the
attempt count, with every configured secret redacted.
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
NOT_PROCESSED_STATUS = frozenset({408, 425, 429})  # the server says it did not act on the request


class ApiError(RuntimeError):
    """A call that failed for good: names the endpoint and how many attempts were made."""

    def __init__(self, endpoint: str, attempts: int, reason: str, status: int | None = None) -> None:
        self.endpoint = endpoint
        self.attempts = attempts
        self.status = status
        self.reason = reason
        super().__init__(f"{endpoint} failed after {attempts} attempt(s): {reason}")


class AmbiguousWrite(ApiError):
    """A call that must not be repeated blindly failed after the server may have applied it."""


class TransientError(Exception):
    def __init__(
        self, reason: str, retry_after: float | None = None, status: int | None = None, *, applied: bool
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.status = status
        self.applied = applied  # whether the server may have acted on the request


class Unauthorized(Exception):
    """A 401: the caller may refresh its credentials and try again (within the retry budget)."""


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
        idempotent: bool = True,
        **kwargs: Any,
    ) -> Any:
        """One logical call, retried as a whole where that is safe (see the module docstring);
        `headers()` is re-evaluated per attempt (fresh tokens)."""
        endpoint = f"{method} {path}"

        def attempt() -> Any:
            try:
                return self._attempt(method, path, headers(), decode, kwargs)
            except Unauthorized:
                # A token can lapse again between two attempts; bad credentials fail at the token endpoint.
                if on_unauthorized is None:
                    raise
                on_unauthorized()
                raise TransientError(
                    "401 Unauthorized; credentials refreshed", retry_after=0.0, status=401, applied=False
                ) from None

        def repeatable(exc: BaseException) -> bool:
            return isinstance(exc, TransientError) and (idempotent or not exc.applied)

        retrying = Retrying(
            stop=stop_after_attempt(self.policy.max_attempts),
            wait=self._wait,
            retry=retry_if_exception(repeatable),
            before_sleep=self._before_sleep,
            sleep=self.sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except TransientError as exc:
            attempts = retrying.statistics.get("attempt_number", self.policy.max_attempts)
            reason = self.redact(exc.reason)
            if exc.applied and not idempotent:
                raise AmbiguousWrite(
                    endpoint, attempts, f"{reason}; it may have been applied", exc.status
                ) from None
            raise ApiError(endpoint, attempts, reason, exc.status) from None
        except UnexpectedPayload as exc:
            if not idempotent:  # the server answered, so it acted: only the answer is unreadable
                raise AmbiguousWrite(endpoint, 1, f"{exc.reason}; it was probably applied") from None
            raise
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
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
                raise TransientError(f"connection failed ({type(exc).__name__})", applied=False) from None
            except httpx.TimeoutException as exc:
                raise TransientError(f"timed out ({type(exc).__name__})", applied=True) from None
            except httpx.TransportError as exc:
                raise TransientError(f"connection dropped ({type(exc).__name__})", applied=True) from None
        if response.status_code == 401:
            raise Unauthorized()
        if response.status_code in TRANSIENT_STATUS:
            raise TransientError(
                f"HTTP {response.status_code}",
                retry_after=parse_retry_after(response.headers.get("retry-after")),
                status=response.status_code,
                applied=response.status_code not in NOT_PROCESSED_STATUS,
            )
        if response.status_code >= 400:
            detail = self.redact(response.text[:300])
            raise ApiError(
                f"{method} {path}", 1, f"HTTP {response.status_code}: {detail}", response.status_code
            )
        try:
            return decode(response)
        except Exception as exc:
            if not _parses(response.content):
                # A 200 whose body does not parse was cut short on the way: worth another try.
                raise TransientError("unreadable response body (cut short)", applied=True) from None
            raise UnexpectedPayload(f"{method} {path}", 1, self.redact(_shape_error(exc))) from None


class UnexpectedPayload(ApiError):
    """A complete body of an unexpected shape: the API changed, so repeating the call cannot help."""


def _parses(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def _shape_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError) and exc.errors():
        first = exc.errors()[0]
        return f"unexpected payload at {'.'.join(map(str, first['loc']))}: {first['msg']}"
    return f"unexpected payload: {type(exc).__name__}: {str(exc)[:200]}"


def prefetch_ordered(pool: Executor, fn: Callable[[T], R], items: Iterable[T], depth: int) -> Iterator[R]:
    """fn over items on a pool, results in input order, at most `depth` in flight (memory stays bounded)."""
    pending = iter(items)
    window: deque[Future[R]] = deque(pool.submit(fn, item) for item in islice(pending, depth))
    while window:
        result = window.popleft().result()
        for item in islice(pending, 1):
            window.append(pool.submit(fn, item))
        yield result
