"""The clients against faulty sandboxes: nothing lost, nothing duplicated, clear errors, no secrets."""

import http.server
import logging
import threading
from typing import Any

import pytest

from consodam_pipeline.clients.consonance import PRODUCT_FIELDS, ConsonanceResource, Product, last_page_key
from consodam_pipeline.clients.dam_models import FIELD
from consodam_pipeline.clients.http import ApiError
from consodam_pipeline.clients.opentext_dam import OpenTextDamResource, condition
from consodam_tests.support import Sandbox

MIXED = ["429", "500", "502", "503", "drop", "truncated"]


def consonance(sandbox: Sandbox, **kw: Any) -> ConsonanceResource:
    return ConsonanceResource(
        url=sandbox.consonance_url,
        api_key=sandbox.env["CONSONANCE_API_KEY"],
        page_size=50,
        retry_base_delay_s=0.01,
        **kw,
    )


def dam(sandbox: Sandbox, **kw: Any) -> OpenTextDamResource:
    return OpenTextDamResource(url=sandbox.dam_url, page_size=200, retry_base_delay_s=0.01, **kw)


def inject_mixed(sandbox: Sandbox, which: str, total_rate: float = 0.10) -> None:
    for mode in MIXED:
        sandbox.fault(which, mode=mode, rate=total_rate / len(MIXED), retry_after=0.05)
    sandbox.fault(which, mode="slow", rate=0.01, delay=1.5)


def test_consonance_listing_survives_faults(sandbox: Sandbox) -> None:
    with consonance(sandbox).client() as client:
        clean = [p.id for page in client.iter_product_pages() for p in page]
    inject_mixed(sandbox, "consonance")
    with consonance(sandbox, timeout_s=1.0, max_attempts=10).client() as client:
        faulty = [p.id for page in client.iter_product_pages() for p in page]
        retries = client.http.retries
    assert faulty == clean and len(set(faulty)) == len(faulty)
    fired = sandbox.admin("consonance", "GET", "/_sandbox/faults")["fired"]
    assert sum(fired.values()) > 0 and retries >= sum(fired.values()) - fired.get("slow", 0)


def test_dam_listing_survives_faults_and_expiring_tokens(sandbox: Sandbox) -> None:
    with dam(sandbox).client() as client:
        clean = sorted(a for page in client.iter_asset_frames() for a in page["asset_id"])
    sandbox.fault("dam", mode="expired_token", count=1, path_prefix="/otmmapi")
    inject_mixed(sandbox, "dam")
    sandbox.fault("dam", mode="expired_token", rate=0.03)
    with dam(sandbox, timeout_s=1.0, max_attempts=10).client() as client:
        faulty = [a for page in client.iter_asset_frames() for a in page["asset_id"]]
        fetches = client.token_fetches
    assert sorted(faulty) == clean and len(set(faulty)) == len(faulty)
    assert fetches >= 1  # a 401 made the client fetch a fresh token (its first came from the process's)


def test_retry_after_is_honoured(sandbox: Sandbox) -> None:
    sleeps: list[float] = []
    sandbox.fault("consonance", mode="429", count=2, retry_after=0.7)
    with consonance(sandbox).client() as client:
        client.http.sleep = lambda s: sleeps.append(s)
        assert client.products_page({"after": 0}, PRODUCT_FIELDS, Product)
    assert sleeps == [0.7, 0.7]


def test_exhausted_retries_name_the_endpoint_without_secrets(
    sandbox: Sandbox, caplog: pytest.LogCaptureFixture
) -> None:
    sandbox.fault("consonance", mode="503", count=3)
    caplog.set_level(logging.DEBUG)
    with consonance(sandbox, max_attempts=3).client() as client, pytest.raises(ApiError) as info:
        client.products_page({"after": 0}, PRODUCT_FIELDS, Product)
    error = info.value
    assert error.endpoint == "POST /graphql" and error.attempts == 3 and error.status == 503
    assert "POST /graphql failed after 3 attempt(s): HTTP 503" in str(error)
    secret = sandbox.env["CONSONANCE_API_KEY"]
    assert secret not in str(error) and secret not in caplog.text


def test_bad_credentials_fail_fast_and_redacted(sandbox: Sandbox) -> None:
    with (
        OpenTextDamResource(url=sandbox.dam_url, client_secret="not-the-secret-1234").client() as client,
        pytest.raises(ApiError) as info,
    ):
        client.get_asset("anything")
    assert info.value.status == 401 and info.value.attempts == 1
    assert "not-the-secret-1234" not in str(info.value)
    with (
        ConsonanceResource(url=sandbox.consonance_url, api_key="wrong-key-12345678").client() as client,
        pytest.raises(ApiError, match="401"),
    ):
        client.products_page({}, PRODUCT_FIELDS, Product)


def test_timeouts_are_retried_then_reported(sandbox: Sandbox) -> None:
    sandbox.fault("consonance", mode="slow", count=2, delay=1.0)
    with (
        consonance(sandbox, timeout_s=0.3, max_attempts=2).client() as client,
        pytest.raises(ApiError) as info,
    ):
        client.products_page({"after": 0}, PRODUCT_FIELDS, Product)
    assert "timed out" in str(info.value) and info.value.attempts == 2


def test_dam_search_lock_and_update(fresh_sandbox: Sandbox) -> None:
    with dam(fresh_sandbox).client() as client:
        first = client.assets_page(0, all_versions=False).assets_resource.asset_list[0]
        isbn = first.fields()[FIELD + "ISBN"]
        hits = list(client.search([condition(FIELD + "ISBN", isbn)]))
        assert hits and all(h.fields()[FIELD + "ISBN"] == isbn for h in hits)
        with client.locked([first.asset_id]) as held:
            assert held == [first.asset_id]
            updated = client.update_metadata(
                first.asset_id, {FIELD + "TITLE": "Tagged"}, security_policy_ids=[2]
            )
        assert updated.fields()[FIELD + "TITLE"] == "Tagged"
        assert [p.id for p in updated.security_policy_list] == [2]
        assert client.get_asset(first.asset_id).locked is False


def test_the_last_page_key_is_read_off_the_raw_body() -> None:
    body = (
        b'{"data":{"products":[{"id":7,"fullTitle":"A \\"pageKey\\":99 trap","pageKey":7},'
        b'{"id":12,"work":{"id":3},"pageKey": 12}]}}'
    )
    assert last_page_key(body) == (2, 12)
    assert last_page_key(b'{"data":{"products":[]}}') == (0, None)


def test_consonance_pages_are_requested_ahead_and_match_plain_paging(sandbox: Sandbox) -> None:
    with consonance(sandbox).client() as client:
        ahead = [p.id for page in client.iter_product_pages() for p in page]
        requests = client.http.requests
        plain: list[int] = []
        after = 0
        while True:
            page = client.products_page({"after": after}, PRODUCT_FIELDS, Product)
            plain += [p.id for p in page]
            if len(page) < client.page_size:
                break
            after = page[-1].id
    assert ahead == plain and len(set(ahead)) == len(ahead)
    assert requests == len(plain) // 50 + 1  # one request per page: nothing fetched twice


class CannedServer:
    """A real HTTP server on 127.0.0.1 that answers every request with the next canned body."""

    def __init__(self, bodies: list[bytes]) -> None:
        self.bodies = bodies
        self.requests = 0
        canned = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = canned.bodies[min(canned.requests, len(canned.bodies) - 1)]
                canned.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_reply_of_another_shape_fails_at_once_and_a_cut_one_is_retried() -> None:
    from consodam_pipeline.clients.dam_models import decode_page
    from consodam_pipeline.clients.http import ResilientHttp, RetryPolicy

    def http(url: str) -> ResilientHttp:
        return ResilientHttp(url, timeout_s=5, policy=RetryPolicy(base_delay=0.01), max_concurrency=2)

    drifted = CannedServer([b'{"assets_resource": {"items": [], "total": 3}}'])
    try:
        with pytest.raises(ApiError, match="unexpected payload") as info:
            http(drifted.url).call("GET", "/assets", decode=lambda r: decode_page(r.text))
        assert info.value.attempts == 1 and drifted.requests == 1  # the API changed: no retry helps
    finally:
        drifted.close()
    page = b'{"assets_resource": {"asset_list": [], "total_number_of_items": 0}}'
    cut = CannedServer([page[:20], page])
    try:
        assert http(cut.url).call("GET", "/assets", decode=lambda r: decode_page(r.text)).total == 0
        assert cut.requests == 2  # an unreadable body was fetched again
    finally:
        cut.close()


def test_a_token_that_lapses_twice_in_one_call_is_refreshed_twice(sandbox: Sandbox) -> None:
    with dam(sandbox).client() as client:
        client.asset_frame_page(0)
        before = client.token_fetches
        sandbox.fault("dam", mode="expired_token", count=2, path_prefix="/otmmapi")
        assert client.asset_frame_page(0).assets.height > 0
        assert client.token_fetches == before + 2


def test_the_clients_of_one_process_share_a_dam_token(sandbox: Sandbox) -> None:
    """A sensor tick or a step opens a client each time: the token one fetched serves the next, until the
    DAM refuses it (then the replacement serves the next ones)."""
    with dam(sandbox).client() as first:
        first.asset_frame_page(0)
    with dam(sandbox).client() as second:
        second.asset_frame_page(0)
        assert second.token_fetches == 0
    sandbox.fault("dam", mode="expired_token", count=1, path_prefix="/otmmapi")
    with dam(sandbox).client() as third:
        third.asset_frame_page(0)
        assert third.token_fetches == 1
    with dam(sandbox).client() as fourth:
        fourth.asset_frame_page(0)
        assert fourth.token_fetches == 0
