"""The Consonance sandbox over real HTTP on 127.0.0.1."""

import httpx

from consodam_pipeline.endpoints import CONSONANCE_KEY
from consodam_tests.support import Sandbox

KEY = CONSONANCE_KEY


def page(
    sandbox: Sandbox, search: dict[str, object], limit: int = 50, fields: str = "id"
) -> list[dict[str, object]]:
    data = sandbox.graphql(
        f"query($s: ProductSearchAttributes, $l: Int) {{ products(productSearch: $s, limit: $l) {{ {fields} }} }}",
        {"s": search, "l": limit},
    )
    assert "errors" not in data, data
    return list(data["data"]["products"])


def all_ids(sandbox: Sandbox, search: dict[str, object] | None = None, limit: int = 50) -> list[int]:
    ids: list[int] = []
    after = 0
    while True:
        rows = page(sandbox, {**(search or {}), "after": after}, limit)
        ids += [int(r["id"]) for r in rows]  # type: ignore[call-overload]
        if len(rows) < limit:
            return ids
        after = ids[-1]


def test_auth_is_enforced(sandbox: Sandbox) -> None:
    body = {"query": "{ products { id } }"}
    assert httpx.post(f"{sandbox.consonance_url}/graphql", json=body).status_code == 401
    bad = httpx.post(f"{sandbox.consonance_url}/graphql", json=body, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    rest = httpx.get(
        f"{sandbox.consonance_url}/api/v4/products.json", headers={"Authorization": f"Bearer {KEY}"}
    )
    assert rest.status_code == 401  # REST wants the Token scheme
    quoted = httpx.get(
        f"{sandbox.consonance_url}/api/v4/products.json", headers={"Authorization": f'Token token="{KEY}"'}
    )
    assert quoted.status_code == 200


def test_keyset_paging_covers_every_product_once(sandbox: Sandbox) -> None:
    total = sandbox.admin("consonance", "GET", "/_sandbox/stats")["counts"]["products"]
    ids = all_ids(sandbox)
    assert len(ids) == total == len(set(ids))
    assert ids == sorted(ids)


def test_paging_is_exact_while_records_change(fresh_sandbox: Sandbox) -> None:
    ids: list[int] = []
    after, step = 0, 0
    while True:
        rows = page(fresh_sandbox, {"after": after}, 40)
        ids += [int(r["id"]) for r in rows]  # type: ignore[call-overload]
        if len(rows) < 40:
            break
        after = ids[-1]
        step += 1
        fresh_sandbox.admin("consonance", "POST", "/_sandbox/activity", json={"changes": 5, "seed": step})
    total = fresh_sandbox.admin("consonance", "GET", "/_sandbox/stats")["counts"]["products"]
    assert sorted(ids) == ids and len(set(ids)) == len(ids) == total


def test_filters_return_what_they_claim(sandbox: Sandbox) -> None:
    rows = page(sandbox, {"onix21ProductFormCodeIn": ["AJ"]}, 1000, "id onix21ProductFormCode")
    assert rows and {r["onix21ProductFormCode"] for r in rows} == {"AJ"}
    dated = page(
        sandbox,
        {"publicationDateGteq": "2020-01-01", "publicationDateLt": "2021-01-01"},
        1000,
        "id publicationDate",
    )
    assert dated and all("2020-01-01" <= str(r["publicationDate"]) < "2021-01-01" for r in dated)
    some = page(sandbox, {}, 3, "id isbn { isbn13 }")
    isbns = [r["isbn"]["isbn13"] for r in some]  # type: ignore[index]
    assert [r["id"] for r in page(sandbox, {"isbn13In": isbns}, 10)] == [r["id"] for r in some]
    assert page(sandbox, {"isbn13Eq": isbns[1]}, 10)[0]["id"] == some[1]["id"]
    assert page(sandbox, {"idEq": some[2]["id"]}, 10)[0]["id"] == some[2]["id"]
    assert page(sandbox, {"changedSince": "2999-01-01"}, 10) == []


def test_product_fields_follow_the_vendor_schema(sandbox: Sandbox) -> None:
    fields = (
        "id isbn { isbn13 isbn10 isbnWithDashes } fullTitle subtitle publicationDate onixPublishingStatusCode "
        "onixPublishingStatus { code description } onix21ProductFormCode onix21ProductForm { code description } "
        "forSaleCountryCodes notForSaleCountryCodes isForSaleWorldwide salesRightsDescription imprint { name } "
        "projectStageName work { id title contributions { onixContributorRoleCode contributor { name } } "
        "supportingResources { id } }"
    )
    product = page(sandbox, {}, 1, fields)[0]
    assert product["isbn"]["isbnWithDashes"].count("-") == 4  # type: ignore[index]
    assert product["onixPublishingStatus"]["description"]  # type: ignore[index]
    assert product["work"]["contributions"][0]["contributor"]["name"]  # type: ignore[index]
    bad = sandbox.graphql("{ products { nonexistentField } }")
    assert "Cannot query field 'nonexistentField'" in bad["errors"][0]["message"]


def test_rest_v4_envelope_and_paging(sandbox: Sandbox) -> None:
    headers = {"Authorization": f"Token token={KEY}"}
    first = httpx.get(
        f"{sandbox.consonance_url}/api/v4/products.json", params={"per_page": 100}, headers=headers
    ).json()
    assert {"current_page", "per_page", "total_pages", "url", "products"} <= set(first)
    seen = []
    for number in range(1, first["total_pages"] + 1):
        body = httpx.get(
            f"{sandbox.consonance_url}/api/v4/products.json",
            params={"page": number, "per_page": 100},
            headers=headers,
        ).json()
        seen += [p["id"] for p in body["products"]]
    assert len(seen) == len(set(seen)) == len(all_ids(sandbox))
    assert {
        "id",
        "work_id",
        "full_title",
        "pub_date",
        "publishing_status",
        "product_form",
        "isbn",
        "imprint",
    } <= set(first["products"][0])


def test_mutations_validate_and_persist_across_restart(fresh_sandbox: Sandbox) -> None:
    target = page(fresh_sandbox, {}, 1, "id")[0]["id"]
    bad = fresh_sandbox.graphql(
        "mutation($i: UpdateProductInput!) { updateProduct(input: $i) {"
        " product { id } errors { attribute message } } }",
        {"i": {"id": target, "publicationDate": "2026-02-30"}},
    )
    assert bad["data"]["updateProduct"]["errors"][0]["attribute"] == "publicationDate"
    ok = fresh_sandbox.graphql(
        "mutation($i: UpdateProductInput!) { updateProduct(input: $i) { product { id projectStageName } "
        "errors { message } } }",
        {"i": {"id": target, "projectStageName": "Production sign-off"}},
    )
    assert ok["data"]["updateProduct"]["errors"] == []
    link = fresh_sandbox.graphql(
        "mutation($i: CreateSupportingResourceInput!) { createSupportingResource(input: $i) { supportingResource "
        "{ id productIds } errors { message } } }",
        {
            "i": {
                "productIds": [target],
                "resourceContentType": "01",
                "imageRemoteUrl": "http://dam.example/a.jpg",
            }
        },
    )
    assert link["data"]["createSupportingResource"]["supportingResource"]["productIds"] == [target]
    fresh_sandbox.restart()
    after = page(
        fresh_sandbox, {"idEq": target}, 1, "id projectStageName work { supportingResources { id } }"
    )[0]
    assert after["projectStageName"] == "Production sign-off"
    assert len(after["work"]["supportingResources"]) == 1  # type: ignore[index]
    assert page(
        fresh_sandbox, {"changedSince": "2026-11-02", "idEq": target}, 1
    )  # the write marked it changed
