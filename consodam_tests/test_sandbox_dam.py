"""The OpenText DAM sandbox over real HTTP on 127.0.0.1."""

import json

import httpx

from consodam_pipeline.endpoints import DAM_CLIENT_ID, DAM_CLIENT_SECRET
from consodam_tests.support import Sandbox

F = "CONSODAM.FIELD."


def get(sandbox: Sandbox, path: str, token: str, **params: object) -> httpx.Response:
    return httpx.get(
        f"{sandbox.dam_url}/otmmapi/v6{path}",
        params=params,  # type: ignore[arg-type]
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def selection(*ids: str) -> str:
    return json.dumps({"selection_context_param": {"selection_context": {"asset_ids": list(ids)}}})


def test_token_endpoint(sandbox: Sandbox) -> None:
    url = f"{sandbox.dam_url}/tenants/sandbox-tenant/oauth2/token"
    basic = httpx.post(
        url, data={"grant_type": "client_credentials"}, auth=(DAM_CLIENT_ID, DAM_CLIENT_SECRET)
    ).json()
    assert basic["token_type"] == "Bearer" and basic["expires_in"] == 3600
    bad = httpx.post(
        url,
        data={
            "grant_type": "client_credentials",
            "client_id": "consodam-sandbox-client",
            "client_secret": "wrong",
        },
    )
    assert bad.status_code == 401
    assert bad.json() == {
        "fault": {"faultstring": "Invalid ApiKey", "detail": {"errorcode": "oauth.v2.InvalidApiKey"}}
    }
    assert httpx.post(f"{sandbox.dam_url}/tenants/other/oauth2/token", data={}).status_code == 404


def test_api_requires_a_valid_token(sandbox: Sandbox) -> None:
    assert httpx.get(f"{sandbox.dam_url}/otmmapi/v6/assets").status_code == 401
    assert get(sandbox, "/assets", "forged").status_code == 401


def test_offset_paging_covers_every_version_once_despite_changes(fresh_sandbox: Sandbox) -> None:
    token = fresh_sandbox.dam_token()
    first = get(fresh_sandbox, "/assets", token, after=0, limit=200, versions="all").json()["assets_resource"]
    seen = [a["asset_id"] for a in first["asset_list"]]
    victim = first["asset_list"][5]["asset_id"]
    fresh_sandbox.admin("dam", "DELETE", f"/_sandbox/assets/{victim}")  # deleting must not shift later pages
    new = fresh_sandbox.admin("dam", "POST", f"/_sandbox/assets/{seen[0]}/versions", json={})["asset_id"]
    after = 200
    while True:
        body = get(fresh_sandbox, "/assets", token, after=after, limit=200, versions="all").json()[
            "assets_resource"
        ]
        seen += [a["asset_id"] for a in body["asset_list"]]
        after += 200
        if after >= body["total_number_of_items"]:
            break
    stats = fresh_sandbox.admin("dam", "GET", "/_sandbox/stats")["counts"]
    assert len(seen) == len(set(seen))
    assert new in seen
    assert len(seen) == stats["asset_versions"] + 1  # the victim was read before it was deleted


def test_a_new_version_is_named_like_the_catalog_names_versions(fresh_sandbox: Sandbox) -> None:
    token = fresh_sandbox.dam_token()
    asset = get(fresh_sandbox, "/assets", token, limit=1).json()["assets_resource"]["asset_list"][0]
    new = fresh_sandbox.admin("dam", "POST", f"/_sandbox/assets/{asset['asset_id']}/versions", json={})
    named = get(fresh_sandbox, f"/assets/{new['asset_id']}", token).json()["asset_resource"]["asset"]
    stem, ext = asset["name"].rsplit(".", 1)
    assert named["name"] == f"{stem.rsplit(' v', 1)[0]} v{asset['version'] + 1}.{ext}"


def test_latest_only_by_default_and_versions_endpoint(sandbox: Sandbox) -> None:
    token = sandbox.dam_token()
    latest = get(sandbox, "/assets", token, limit=0).json()["assets_resource"]["asset_list"]
    assert all(a["latest_version"] for a in latest)
    multi = next(a for a in latest if a["version"] > 1)
    versions = get(sandbox, f"/assets/{multi['asset_id']}/versions", token).json()["versions_resource"][
        "asset_list"
    ]
    assert [v["version"] for v in versions] == list(range(1, multi["version"] + 1))
    assert {v["original_asset_id"] for v in versions} == {multi["original_asset_id"]}
    content = get(sandbox, f"/assets/{multi['asset_id']}/contents", token)
    assert content.status_code == 200 and len(content.content) > 0
    assert get(sandbox, "/assets/" + "0" * 40, token).status_code == 404


def test_search_conditions(sandbox: Sandbox) -> None:
    token = sandbox.dam_token()
    asset = get(sandbox, "/assets", token, limit=1).json()["assets_resource"]["asset_list"][0]
    isbn = next(e for e in asset["metadata"]["metadata_element_list"] if e["id"] == F + "ISBN")["value"][
        "value"
    ]["value"]
    conditions = {
        "search_condition_list": {
            "search_condition": [
                {
                    "metadata_field_id": F + "ISBN",
                    "relational_operator_id": "ARTESIA.OPERATOR.CHAR.IS",
                    "value": isbn,
                }
            ]
        }
    }
    hits = get(
        sandbox,
        "/search/text",
        token,
        keyword_query="*",
        search_condition_list=json.dumps(conditions),
        versions="all",
    ).json()["search_result_resource"]
    assert hits["search_result"]["total_hit_count"] >= 1
    for found in hits["asset_list"]:
        tags = {e["id"]: e.get("value") for e in found["metadata"]["metadata_element_list"]}
        assert tags[F + "ISBN"]["value"]["value"] == isbn
    future = {
        "search_condition_list": {
            "search_condition": [
                {
                    "metadata_field_id": "ARTESIA.FIELD.DATE LAST MODIFIED",
                    "relational_operator_id": "ARTESIA.OPERATOR.DATE.IS AFTER",
                    "value": "2999-01-01T00:00:00Z",
                }
            ]
        }
    }
    none = get(sandbox, "/search/text", token, search_condition_list=json.dumps(future)).json()
    assert none["search_result_resource"]["search_result"]["total_hit_count"] == 0
    bad = get(
        sandbox,
        "/search/text",
        token,
        search_condition_list=json.dumps(
            {"search_condition_list": {"search_condition": [{"metadata_field_id": "NOPE", "value": 1}]}}
        ),
    )
    assert bad.status_code == 400


def test_lock_update_unlock_and_persistence(fresh_sandbox: Sandbox) -> None:
    token = fresh_sandbox.dam_token()
    headers = {"Authorization": f"Bearer {token}"}
    asset_id = get(fresh_sandbox, "/assets", token, limit=1).json()["assets_resource"]["asset_list"][0][
        "asset_id"
    ]
    edit = {
        "edited_asset": {
            "data": {
                "metadata": [
                    {"id": F + "TITLE", "value": {"value": {"type": "string", "value": "The Salt Orchard"}}}
                ]
            }
        }
    }
    unlocked = httpx.patch(
        f"{fresh_sandbox.dam_url}/otmmapi/v6/assets/{asset_id}", json=edit, headers=headers
    )
    assert unlocked.status_code == 409
    state = f"{fresh_sandbox.dam_url}/otmmapi/v6/assets/state"
    locked = httpx.put(
        state, data={"action": "lock", "selection_context": selection(asset_id, "f" * 40)}, headers=headers
    ).json()["bulk_asset_result_representation"]["bulk_asset_result"]
    assert (
        locked["successful_object_list"] == [asset_id] and locked["failed_object_list"][0]["id"] == "f" * 40
    )
    done = httpx.patch(f"{fresh_sandbox.dam_url}/otmmapi/v6/assets/{asset_id}", json=edit, headers=headers)
    assert done.status_code == 200
    readonly = {
        "edited_asset": {"data": {"metadata": [{"id": F + "ROLE", "value": {"value": {"value": "x"}}}]}}
    }
    assert (
        httpx.patch(
            f"{fresh_sandbox.dam_url}/otmmapi/v6/assets/{asset_id}", json=readonly, headers=headers
        ).status_code
        == 400
    )
    httpx.put(state, data={"action": "unlock", "selection_context": selection(asset_id)}, headers=headers)
    fresh_sandbox.restart()
    token = fresh_sandbox.dam_token()  # tokens do not survive a restart; data does
    asset = get(fresh_sandbox, f"/assets/{asset_id}", token).json()["asset_resource"]["asset"]
    tags = {e["id"]: e.get("value") for e in asset["metadata"]["metadata_element_list"]}
    assert tags[F + "TITLE"]["value"]["value"] == "The Salt Orchard" and asset["locked"] is False


def test_async_jobs_create_versions_and_assets(fresh_sandbox: Sandbox) -> None:
    token = fresh_sandbox.dam_token()
    headers = {"Authorization": f"Bearer {token}"}
    asset = get(fresh_sandbox, "/assets", token, limit=1).json()["assets_resource"]["asset_list"][0]
    handle = httpx.post(
        f"{fresh_sandbox.dam_url}/otmmapi/v6/assets/{asset['asset_id']}/versions", headers=headers
    )
    assert handle.status_code == 202
    job_id = handle.json()["job_handle"]["job_id"]
    states = []
    for _ in range(50):
        job = get(fresh_sandbox, f"/jobs/{job_id}", token).json()["job_resource"]["job"]
        states.append(job["job_state"])
        if job["job_state"] == "COMPLETED":
            break
    assert states[0] == "IN_PROGRESS" and states[-1] == "COMPLETED"
    new = get(fresh_sandbox, f"/assets/{job['asset_id']}", token).json()["asset_resource"]["asset"]
    assert new["version"] == asset["version"] + 1 and new["original_asset_id"] == asset["original_asset_id"]


def test_folders_collections_policies(fresh_sandbox: Sandbox) -> None:
    token = fresh_sandbox.dam_token()
    headers = {"Authorization": f"Bearer {token}"}
    roots = get(fresh_sandbox, "/folders/rootfolders", token).json()["folders_resource"]["folder_list"]
    children = get(fresh_sandbox, f"/folders/{roots[0]['asset_id']}/children", token).json()[
        "folder_children"
    ]
    assert children["folder_list"]
    policies = get(fresh_sandbox, "/securitypolicies", token).json()
    assert {p["name"] for p in policies["security_policies_resource"]["security_policy_list"]} >= {
        "Internal",
        "Public",
    }
    made = httpx.post(
        f"{fresh_sandbox.dam_url}/otmmapi/v6/collections",
        headers=headers,
        json={"collection_resource": {"collection": {"name": "Spring launch"}}},
    ).json()
    cid = made["collection_resource"]["collection"][0]["id"]
    asset_id = get(fresh_sandbox, "/assets", token, limit=1).json()["assets_resource"]["asset_list"][0][
        "asset_id"
    ]
    listed = httpx.put(
        f"{fresh_sandbox.dam_url}/otmmapi/v6/collections/{cid}/assets",
        headers=headers,
        json={"asset_ids": [asset_id]},
    ).json()
    assert [a["asset_id"] for a in listed["assets_resource"]["asset_list"]] == [asset_id]


def test_review_tasks(fresh_sandbox: Sandbox) -> None:
    token = fresh_sandbox.dam_token()
    headers = {"Authorization": f"Bearer {token}"}
    asset_id = get(fresh_sandbox, "/assets", token, limit=1).json()["assets_resource"]["asset_list"][0][
        "asset_id"
    ]
    url = f"{fresh_sandbox.dam_url}/otmmapi/v6/reviewtasks"
    body = {"asset_id": asset_id, "milestone": "Cover approval", "isbn": "9780306406157"}
    first = httpx.post(url, json=body, headers=headers).json()["review_task"]
    again = httpx.post(url, json=body, headers=headers).json()["review_task"]
    assert first["task_id"] == again["task_id"] and first["status"] == "open"
    assert httpx.post(url, json={"milestone": "x"}, headers=headers).status_code == 400
    assert [
        t["task_id"] for t in get(fresh_sandbox, "/reviewtasks", token, status="open").json()["review_tasks"]
    ] == [first["task_id"]]
    done = fresh_sandbox.admin(
        "dam", "POST", f"/_sandbox/reviewtasks/{first['task_id']}/complete", json={"status": "approved"}
    )["review_task"]
    assert done["status"] == "approved" and done["completed_at"]
    assert get(fresh_sandbox, "/reviewtasks", token, status="open").json()["review_tasks"] == []


def test_malformed_json_is_a_400_with_the_reason(sandbox: Sandbox) -> None:
    """A body that is not JSON is the caller's mistake: 400 naming it, never a 500."""
    token = {"Authorization": f"Bearer {sandbox.dam_token()}", "Content-Type": "application/json"}
    asset = httpx.get(f"{sandbox.dam_url}/otmmapi/v6/assets", params={"limit": 1}, headers=token).json()
    asset_id = asset["assets_resource"]["asset_list"][0]["asset_id"]
    for method, url, headers in (
        ("POST", f"{sandbox.dam_url}/otmmapi/v6/reviewtasks", token),
        ("POST", f"{sandbox.dam_url}/_sandbox/assets/{asset_id}/approval", {}),
        ("POST", f"{sandbox.consonance_url}/_sandbox/activity", {}),
    ):
        reply = httpx.request(method, url, content=b'{"status": "approved",', headers=headers)
        assert reply.status_code == 400, (url, reply.status_code, reply.text)
        assert "malformed JSON" in reply.json()["message"]
    graphql = httpx.post(
        f"{sandbox.consonance_url}/graphql",
        content=b"{query",
        headers={"Authorization": f"Bearer {sandbox.env['CONSONANCE_API_KEY']}"},
    )
    assert graphql.status_code == 400 and "malformed JSON" in graphql.json()["errors"][0]["message"]


def test_a_collection_larger_than_a_page_is_read_whole(fresh_sandbox: Sandbox) -> None:
    """Members are paged with after/limit on both sides: the sandbox serves a page at a time (100 by default,
    as its other lists), and the client reads every page."""
    from consodam_pipeline.clients.opentext_dam import OpenTextDamResource

    token = fresh_sandbox.dam_token()
    headers = {"Authorization": f"Bearer {token}"}
    made = httpx.post(
        f"{fresh_sandbox.dam_url}/otmmapi/v6/collections",
        headers=headers,
        json={"collection_resource": {"collection": {"name": "Launch 2027-02 · Big"}}},
    ).json()
    cid = made["collection_resource"]["collection"][0]["id"]
    listed = get(fresh_sandbox, "/assets", token, limit=250, versions="all").json()["assets_resource"]
    members = sorted(a["asset_id"] for a in listed["asset_list"])
    assert len(members) == 250
    httpx.put(
        f"{fresh_sandbox.dam_url}/otmmapi/v6/collections/{cid}/assets",
        headers=headers,
        json={"asset_ids": members},
    ).raise_for_status()
    first = get(fresh_sandbox, f"/collections/{cid}/assets", token).json()["assets_resource"]
    assert len(first["asset_list"]) == 100 and first["total_number_of_items"] == 250  # one page by default
    second = get(fresh_sandbox, f"/collections/{cid}/assets", token, after=200, limit=100).json()
    assert [a["asset_id"] for a in second["assets_resource"]["asset_list"]] == members[200:]
    with OpenTextDamResource(url=fresh_sandbox.dam_url, page_size=60).client() as client:
        assert client.collection_assets(cid) == members  # five pages, each member once
