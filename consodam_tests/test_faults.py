"""Each injected fault does what it says, over real sockets."""

import httpx
import pytest

from consodam_pipeline.endpoints import CONSONANCE_KEY
from consodam_tests.support import Sandbox

QUERY = {"query": "{ products(limit: 5) { id } }"}
KEY = {"Authorization": f"Bearer {CONSONANCE_KEY}"}


def call(sandbox: Sandbox, timeout: float = 10) -> httpx.Response:
    return httpx.post(f"{sandbox.consonance_url}/graphql", json=QUERY, headers=KEY, timeout=timeout)


@pytest.mark.parametrize("status", ["500", "502", "503"])
def test_server_errors(sandbox: Sandbox, status: str) -> None:
    sandbox.fault("consonance", mode=status, count=1)
    assert call(sandbox).status_code == int(status)
    assert call(sandbox).status_code == 200  # only the next N requests


def test_rate_limit_carries_retry_after(sandbox: Sandbox) -> None:
    sandbox.fault("consonance", mode="429", count=2, retry_after=3)
    first = call(sandbox)
    assert first.status_code == 429 and first.headers["retry-after"] == "3"
    assert call(sandbox).status_code == 429
    assert call(sandbox).status_code == 200


def test_slow_reply_outlasts_the_client_timeout(sandbox: Sandbox) -> None:
    sandbox.fault("consonance", mode="slow", count=1, delay=2.0)
    with pytest.raises(httpx.ReadTimeout):
        call(sandbox, timeout=0.5)


def test_dropped_connection(sandbox: Sandbox) -> None:
    sandbox.fault("consonance", mode="drop", count=1)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):  # a cut reply or a reset, by timing
        call(sandbox)
    assert call(sandbox).status_code == 200


def test_truncated_body(sandbox: Sandbox) -> None:
    sandbox.fault("consonance", mode="truncated", count=1)
    response = call(sandbox)
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()


def test_expired_token(sandbox: Sandbox) -> None:
    token = sandbox.dam_token()
    sandbox.fault("dam", mode="expired_token", count=1)
    response = httpx.get(f"{sandbox.dam_url}/otmmapi/v6/assets", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401 and "invalid_token" in response.headers["www-authenticate"]


def test_rate_and_path_scope(sandbox: Sandbox) -> None:
    sandbox.fault("consonance", mode="503", rate=1.0, path_prefix="/api/v4")
    assert call(sandbox).status_code == 200  # /graphql is outside the rule's path
    rest = httpx.get(
        f"{sandbox.consonance_url}/api/v4/products.json",
        headers={"Authorization": f"Token token={CONSONANCE_KEY}"},
    )
    assert rest.status_code == 503
    described = sandbox.admin("consonance", "GET", "/_sandbox/faults")
    assert described["fired"]["503"] >= 1
    sandbox.clear_faults()
    assert sandbox.admin("consonance", "GET", "/_sandbox/faults")["rules"] == []


def test_bad_fault_rule_is_rejected(sandbox: Sandbox) -> None:
    response = httpx.post(f"{sandbox.consonance_url}/_sandbox/faults", json={"mode": "explode", "count": 1})
    assert response.status_code == 400 and "unknown fault mode" in response.json()["error"]
