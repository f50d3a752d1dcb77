"""Consonance client: GraphQL (keyset paging, changedSince, field selection) and the REST v4 fallback."""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date
from typing import Any, TypeVar

import httpx
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from consodam_pipeline import endpoints
from consodam_pipeline.clients.consonance_frames import decode_product_page
from consodam_pipeline.clients.http import ApiError, ResilientHttp
from consodam_pipeline.clients.resource import HttpApiResource


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Isbn(_Camel):
    isbn13: str | None = None
    isbn10: str | None = None
    isbn_with_dashes: str | None = None


class CodeDescription(_Camel):
    code: str
    description: str


class Contact(_Camel):
    id: int
    name: str


class Contribution(_Camel):
    id: int
    sequence_number: int | None = None
    onix_contributor_role_code: str | None = None
    contributor: Contact


class SupportingResource(_Camel):
    id: int
    caption: str | None = None
    filename: str | None = None
    image_remote_url: str | None = None
    product_ids: list[int] = Field(default_factory=list)
    resource_content_type: str | None = None
    created_at: str | None = None


SUPPORTING_RESOURCE_FIELDS = "id caption filename imageRemoteUrl productIds resourceContentType createdAt"
RESOURCE_BATCH = 100


class Work(_Camel):
    id: int
    title: str
    subtitle: str | None = None
    contributions: list[Contribution] = Field(default_factory=list)
    supporting_resources: list[SupportingResource] = Field(default_factory=list)


class Todo(_Camel):
    """A production to-do (sandbox convention: Consonance has no public GraphQL type for them)."""

    name: str
    milestone: bool = False
    due_date: str | None = None
    done_date: str | None = None


class Imprint(_Camel):
    name: str


class Product(_Camel):
    id: int
    isbn: Isbn | None = None
    full_title: str
    subtitle: str | None = None
    publication_date: str | None = None  # kept as text: validated (and quarantined) downstream
    onix_publishing_status_code: str | None = None
    onix21_product_form_code: str | None = None
    for_sale_country_codes: list[str] = Field(default_factory=list)
    not_for_sale_country_codes: list[str] = Field(default_factory=list)
    is_for_sale_worldwide: bool = False
    sales_rights_description: str | None = None
    row_sales_rights_type_code: str | None = None
    sales_embargo_date: str | None = None
    imprint: Imprint | None = None
    project_stage_name: str | None = None
    updated_at: str | None = None
    todos: list[Todo] = Field(default_factory=list)
    work: Work


class _ResourcesOfWork(_Camel):
    supporting_resources: list[SupportingResource] = Field(default_factory=list)


class ProductionFile(_Camel):
    """A file referenced in a product's production workflow (sandbox convention for the type's fields)."""

    id: int
    file_type: str
    url: str
    caption: str | None = None


class ProductResources(_Camel):
    """An edition as Consonance shows it now: when it last changed, its stage, the supporting resources of
    its work and its production files."""

    id: int
    isbn: Isbn | None = None
    updated_at: str | None = None
    project_stage_name: str | None = None
    production_files: list[ProductionFile] = Field(default_factory=list)
    work: _ResourcesOfWork

    @property
    def resources(self) -> list[SupportingResource]:
        """The resources linked to this edition."""
        return [r for r in self.work.supporting_resources if self.id in r.product_ids]


PRODUCTION_FILE_FIELDS = "id fileType url caption"
RESOURCE_FIELDS = (
    f"id isbn {{ isbn13 }} updatedAt projectStageName productionFiles {{ {PRODUCTION_FILE_FIELDS} }}"
    f" work {{ supportingResources {{ {SUPPORTING_RESOURCE_FIELDS} }} }}"
)


class ProductStamp(_Camel):
    """The cheap probe shape: which product, and when it last changed."""

    id: int
    updated_at: str | None = None


M = TypeVar("M", bound=BaseModel)
P = TypeVar("P")
R = TypeVar("R")


@functools.cache
def _adapter(model: type[M]) -> TypeAdapter[list[M]]:
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def validated(model: type[M], rows: list[dict[str, Any]]) -> list[M]:
    """Rows into models; a shape we do not understand is an ApiError naming where, not a crash."""
    try:
        return _adapter(model).validate_python(rows)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"]))
        raise ApiError("POST /graphql", 1, f"unexpected payload at {where}: {first['msg']}") from None


class GraphQLResponse(BaseModel):
    data: dict[str, Any] | None = None
    errors: list[dict[str, Any]] | None = None


def _data(response: GraphQLResponse) -> dict[str, Any]:
    if response.errors:
        raise ApiError("POST /graphql", 1, "; ".join(str(e.get("message")) for e in response.errors))
    return response.data or {}


def _search(search: dict[str, Any] | None, changed_since: date | None) -> dict[str, Any]:
    found = dict(search or {})
    if changed_since is not None:
        found["changedSince"] = changed_since.isoformat()
    return found


PAGE_KEY = "pageKey"
_PAGE_KEYS = re.compile(rb'"pageKey"\s*:\s*(\d+)')


def last_page_key(body: bytes) -> tuple[int, int | None]:
    """(products on the page, the last one's id) from a raw products body whose selection ends with
    `pageKey: id`. JSON escapes every quote inside a string, so the pattern only matches the field."""
    keys = _PAGE_KEYS.findall(body)
    return len(keys), int(keys[-1]) if keys else None


# What the title snapshot reads of a product, and nothing more: the ISBN's other forms are not read, and the
# work's supporting resources are read where links are planned, for the editions in question
# (`products_with_resources`).
PRODUCT_FIELDS = """
  id isbn { isbn13 } fullTitle subtitle publicationDate onixPublishingStatusCode
  onix21ProductFormCode forSaleCountryCodes notForSaleCountryCodes isForSaleWorldwide salesRightsDescription
  rowSalesRightsTypeCode salesEmbargoDate imprint { name } projectStageName updatedAt
  todos { name milestone dueDate doneDate }
  work { id title subtitle contributions { id sequenceNumber onixContributorRoleCode contributor { id name } } }
"""
PROBE_FIELDS = "id updatedAt"


class ConsonanceClient:
    def __init__(self, http: ResilientHttp, api_key: str, page_size: int) -> None:
        self.http = http
        self.api_key = api_key
        self.page_size = page_size

    def __enter__(self) -> ConsonanceClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.http.close()

    def _bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def graphql(
        self, query: str, variables: dict[str, Any] | None = None, *, idempotent: bool = True
    ) -> dict[str, Any]:
        """A query, or a mutation; one that creates something is not idempotent (see clients.http)."""
        response: GraphQLResponse = self.http.call(
            "POST",
            "/graphql",
            json={"query": query, "variables": variables or {}},
            headers=self._bearer,
            decode=lambda r: GraphQLResponse.model_validate_json(r.content),
            idempotent=idempotent,
        )
        return _data(response)

    def _products_request(
        self,
        search: dict[str, Any],
        fields: str,
        parse: Callable[[bytes], R],
        on_body: Callable[[bytes], None] | None = None,
    ) -> R:
        """One page of `products(productSearch:, limit:) { fields }`; `on_body` sees the raw body before
        `parse` reads it."""
        query = (
            "query Products($search: ProductSearchAttributes, $limit: Int) {"
            f" products(productSearch: $search, limit: $limit) {{ {fields} }} }}"
        )

        def decode(response: httpx.Response) -> R:
            if on_body is not None:
                on_body(response.content)
            return parse(response.content)

        result: R = self.http.call(
            "POST",
            "/graphql",
            json={"query": query, "variables": {"search": search, "limit": self.page_size}},
            headers=self._bearer,
            decode=decode,
        )
        return result

    def products_rows(
        self,
        search: dict[str, Any],
        fields: str,
        on_body: Callable[[bytes], None] | None = None,
    ) -> list[dict[str, Any]]:
        """One page of products as parsed JSON (validation is the caller's, so paging need not wait)."""
        response = self._products_request(search, fields, GraphQLResponse.model_validate_json, on_body)
        products = _data(response).get("products")
        if not isinstance(products, list):
            raise ApiError("POST /graphql products", 1, "no products in the response")
        return products

    def products_page(self, search: dict[str, Any], fields: str, model: type[M]) -> list[M]:
        return validated(model, self.products_rows(search, fields))

    def products_frame(
        self, search: dict[str, Any], on_body: Callable[[bytes], None] | None = None
    ) -> pl.DataFrame:
        """One page of products (`PRODUCT_FIELDS`) as columns."""
        fields = f"{PRODUCT_FIELDS} {PAGE_KEY}: id"
        page = self._products_request(search, fields, decode_product_page, on_body)
        if page.errors:
            raise ApiError("POST /graphql", 1, "; ".join(page.errors))
        if page.products is None:
            raise ApiError("POST /graphql products", 1, "no products in the response")
        return page.products

    def _keyset_pages(
        self,
        fetch: Callable[[dict[str, Any], Callable[[bytes], None]], P],
        extent: Callable[[P], tuple[int, int | None]],
        search: dict[str, Any],
    ) -> Iterator[P]:
        """Keyset paging by id, one page ahead. Each product also carries its id as `pageKey`, last, so
        the last id of a page can be read off the raw body the moment it arrives: the next page is
        asked for before this one is parsed, and the server is seldom idle. Should the body turn out
        unreadable (and be fetched again), the page asked for on its say-so is dropped. `extent` gives
        a parsed page's size and last id."""
        requested: dict[int, Future[P]] = {}
        lock = threading.Lock()
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="consonance-pages") as pool:

            def request(after: int) -> None:
                with lock:
                    if after not in requested:
                        requested[after] = pool.submit(fetch, {**search, "after": after}, ahead)

            def ahead(body: bytes) -> None:
                count, last = last_page_key(body)
                if count >= self.page_size and last is not None:
                    request(last)

            after = 0
            request(after)
            while True:
                with lock:
                    pending = requested.pop(after)
                page = pending.result()
                size, last = extent(page)
                following = last if size >= self.page_size else None  # a full page: there may be more
                if following is not None:
                    after = following
                    request(after)
                # A key below the next page's was asked for on the word of a body that did not parse; one
                # above it is a page further ahead, asked for by the next page's body, and is kept.
                with lock:
                    for stale in [k for k in requested if k < after]:
                        requested.pop(stale).cancel()
                if size:
                    yield page
                if following is None:
                    return

    def iter_pages(
        self,
        model: type[M],
        fields: str,
        *,
        changed_since: date | None = None,
        search: dict[str, Any] | None = None,
    ) -> Iterator[list[M]]:
        """Every product matching `search` (changed since a day), a validated page at a time."""
        keyed_fields = f"{fields} {PAGE_KEY}: id"

        def fetch(page_search: dict[str, Any], on_body: Callable[[bytes], None]) -> list[dict[str, Any]]:
            return self.products_rows(page_search, keyed_fields, on_body=on_body)

        def extent(rows: list[dict[str, Any]]) -> tuple[int, int | None]:
            return len(rows), int(rows[-1]["id"]) if rows else None

        for rows in self._keyset_pages(fetch, extent, _search(search, changed_since)):
            yield validated(model, rows)

    def iter_product_frames(self, *, changed_since: date | None = None) -> Iterator[pl.DataFrame]:
        """Every product (`PRODUCT_FIELDS`) changed since a day, or all of them, a page of columns at a
        time: the title ingest's read."""

        def extent(frame: pl.DataFrame) -> tuple[int, int | None]:
            return frame.height, int(frame["id"][-1]) if frame.height else None

        return self._keyset_pages(self.products_frame, extent, _search(None, changed_since))

    def iter_product_pages(
        self, *, changed_since: date | None = None, search: dict[str, Any] | None = None
    ) -> Iterator[list[Product]]:
        return self.iter_pages(Product, PRODUCT_FIELDS, changed_since=changed_since, search=search)

    def iter_product_stamps(self, *, changed_since: date | None = None) -> Iterator[list[ProductStamp]]:
        return self.iter_pages(ProductStamp, PROBE_FIELDS, changed_since=changed_since)

    def products_with_resources(self, isbns: Sequence[str]) -> list[ProductResources]:
        """The given editions with their work's supporting resources, as Consonance shows them now."""
        found: list[ProductResources] = []
        for start in range(0, len(isbns), RESOURCE_BATCH):
            data = self.graphql(
                "query R($i: [String!], $n: Int) { products(productSearch: {isbn13In: $i}, limit: $n) {"
                f" {RESOURCE_FIELDS} }} }}",
                {"i": list(isbns[start : start + RESOURCE_BATCH]), "n": RESOURCE_BATCH * 2},
            )
            found += validated(ProductResources, data.get("products") or [])
        return found

    def create_supporting_resource(
        self, *, product_id: int, content_type: str, url: str, caption: str, filename: str
    ) -> SupportingResource:
        """Not idempotent: an ambiguous failure raises AmbiguousWrite, and the caller looks it up."""
        data = self.graphql(
            "mutation C($input: CreateSupportingResourceInput!) { createSupportingResource(input: $input) {"
            f" supportingResource {{ {SUPPORTING_RESOURCE_FIELDS} }} errors {{ attribute message }} }} }}",
            {
                "input": {
                    "productIds": [product_id],
                    "resourceContentType": content_type,
                    "imageRemoteUrl": url,
                    "caption": caption,
                    "filename": filename,
                }
            },
            idempotent=False,
        )["createSupportingResource"]
        _raise_errors("createSupportingResource", data)
        created = validated(SupportingResource, [data.get("supportingResource")])
        return created[0]

    def delete_supporting_resource(self, resource_id: int) -> bool:
        """True if it was deleted now, False if it was already gone (a repeated delete is no error)."""
        data = self.graphql(
            "mutation D($id: Int!) { deleteSupportingResource(id: $id) { supportingResource { id }"
            " errors { attribute message } } }",
            {"id": resource_id},
        )["deleteSupportingResource"]
        if any("not found" in str(e.get("message")) for e in data.get("errors") or []):
            return False
        _raise_errors("deleteSupportingResource", data)
        return True

    def create_production_file(
        self, *, product_id: int, file_type: str, url: str, caption: str
    ) -> ProductionFile:
        """Not idempotent: an ambiguous failure raises AmbiguousWrite, and the caller looks it up."""
        data = self.graphql(
            "mutation P($input: CreateProductionFileInput!) { createProductionFile(input: $input) {"
            f" productionFile {{ {PRODUCTION_FILE_FIELDS} }} errors {{ attribute message }} }} }}",
            {"input": {"productId": product_id, "fileType": file_type, "url": url, "caption": caption}},
            idempotent=False,
        )["createProductionFile"]
        _raise_errors("createProductionFile", data)
        return validated(ProductionFile, [data.get("productionFile")])[0]

    def delete_production_file(self, file_id: int) -> bool:
        """True if it was deleted now, False if it was already gone."""
        data = self.graphql(
            "mutation D($id: Int!) { deleteProductionFile(id: $id) { productionFile { id }"
            " errors { attribute message } } }",
            {"id": file_id},
        )["deleteProductionFile"]
        if any("not found" in str(e.get("message")) for e in data.get("errors") or []):
            return False
        _raise_errors("deleteProductionFile", data)
        return True

    def update_product(self, product_id: int, **changes: Any) -> dict[str, Any]:
        """Sets the given fields to the given values: a full state, so repeating it is safe."""
        data = self.graphql(
            "mutation U($input: UpdateProductInput!) { updateProduct(input: $input) {"
            " product { id projectStageName publicationDate updatedAt } errors { attribute message } } }",
            {"input": {"id": product_id, **changes}},
        )["updateProduct"]
        _raise_errors("updateProduct", data)
        return dict(data["product"])


def _raise_errors(mutation: str, payload: dict[str, Any]) -> None:
    errors = payload.get("errors") or []
    if errors:
        detail = "; ".join(f"{e.get('attribute')}: {e.get('message')}" for e in errors)
        raise ApiError(f"POST /graphql {mutation}", 1, f"rejected: {detail}")


class ConsonanceResource(HttpApiResource):
    """Consonance API access; defaults point at the local sandbox."""

    url: str = endpoints.CONSONANCE_URL
    api_key: str = endpoints.CONSONANCE_KEY
    page_size: int = 500

    def client(self) -> ConsonanceClient:
        return ConsonanceClient(self.http(self.api_key), self.api_key, self.page_size)
