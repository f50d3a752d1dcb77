"""References to DAM versions that consodam keeps on Consonance editions: write targets whose slots are
(edition, what the reference is for), each filled by one reference pointing at a DAM version.

- supporting resources (F1, F8): an edition's marketing assets — slot = the asset's role;
- production files (F5): an edition's production package — slot = the package requirement it meets.

consodam owns the references whose URL points into the DAM it syncs from (`…/otmmapi/v6/assets/`); a
person's own uploads are never touched. A slot's state is the reference's caption, type and URL, in
canonical JSON: a reference that differs is replaced, never edited.
"""

from __future__ import annotations

import json
import re
from abc import abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from consodam_pipeline.clients.consonance import ConsonanceClient, ProductResources
from consodam_pipeline.sync.engine import Found, Outcome, WriteTarget, found_frame, state_json

_ASSET_IN_URL = re.compile(r"/otmmapi/v6/assets/([^/]+)/contents$")


def slot_key(product_id: int, slot: str) -> str:
    return f"{product_id}|{slot}"


def product_of(key: str) -> int:
    return int(key.split("|", 1)[0])


def reference_state(caption: str, kind: str, url: str) -> str:
    return state_json({"caption": caption, "type": kind, "url": url})


def asset_in_url(url: str | None) -> str | None:
    match = _ASSET_IN_URL.search(url or "")
    return match.group(1) if match else None


@dataclass
class ConsonanceReferenceTarget(WriteTarget[ConsonanceClient]):
    entity: str
    written_event: str
    removed_event: str
    dam_url: str  # references pointing into this DAM are consodam's
    isbns: Mapping[int, str] = field(default_factory=dict)  # product id → ISBN, to read editions back
    system: str = "consonance"

    def content_url(self, asset_id: str) -> str:
        return f"{self.dam_url.rstrip('/')}/otmmapi/v6/assets/{asset_id}/contents"

    def owns(self, url: str | None) -> bool:
        return (url or "").startswith(f"{self.dam_url.rstrip('/')}/otmmapi/v6/assets/")

    @abstractmethod
    def references(self, product: ProductResources) -> list[tuple[int, str, str, str]]:
        """(id, caption, type, url) of every reference of this kind on the edition."""

    @abstractmethod
    def slot(self, product_id: int, kind: str, url: str) -> str:
        """Which slot a reference fills."""

    @abstractmethod
    def _create(
        self, client: ConsonanceClient, product_id: int, wanted: dict[str, Any]
    ) -> tuple[int, str, str, str]:
        """Create one reference; (id, caption, type, url) as Consonance returned it."""

    @abstractmethod
    def _delete(self, client: ConsonanceClient, reference_id: int) -> None: ...

    def _found(self, product_id: int, ref: tuple[int, str, str, str]) -> Found:
        ref_id, caption, kind, url = ref
        return Found(
            slot_key(product_id, self.slot(product_id, kind, url)),
            str(ref_id),
            reference_state(caption, kind, url),
        )

    def observe_products(self, products: Sequence[ProductResources]) -> pl.DataFrame:
        return found_frame(
            [self._found(p.id, r) for p in products for r in self.references(p) if self.owns(r[3])]
        )

    def observe(self, client: ConsonanceClient, product_ids: Sequence[int]) -> pl.DataFrame:
        """The references consodam owns on these editions, as Consonance shows them now."""
        return self.observe_products(
            client.products_with_resources([self.isbns[p] for p in product_ids if p in self.isbns])
        )

    def create(self, client: ConsonanceClient, key: str, state: str) -> Found:
        product_id = product_of(key)
        return self._found(product_id, self._create(client, product_id, json.loads(state)))

    def update(self, client: ConsonanceClient, found: Found, state: str) -> Found:
        raise NotImplementedError("references are replaced, never edited")  # decide() never asks

    def delete(self, client: ConsonanceClient, found: Found) -> None:
        self._delete(client, int(found.handle))

    def lookup(self, client: ConsonanceClient, key: str) -> list[Found]:
        observed = self.observe(client, [product_of(key)])
        return [
            Found(r["key"], r["handle"], r["state"])
            for r in observed.iter_rows(named=True)
            if r["key"] == key
        ]

    def journal_stamps(self, client: ConsonanceClient, done: Sequence[Outcome]) -> dict[str, str]:
        """Each written edition's updatedAt, read back right after the writes: the Consonance sensor
        then knows that change for consodam's own."""
        products = sorted({product_of(o.action.key) for o in done})
        isbns = [self.isbns[p] for p in products if p in self.isbns]
        return {str(p.id): p.updated_at for p in client.products_with_resources(isbns) if p.updated_at}


@dataclass
class SupportingResourceTarget(ConsonanceReferenceTarget):
    """Supporting resources: slot = the role of the DAM version the URL names (`slot_of`)."""

    slot_of: Callable[[int, str], str] = lambda product_id, asset_id: asset_id

    def references(self, product: ProductResources) -> list[tuple[int, str, str, str]]:
        return [
            (r.id, r.caption or "", r.resource_content_type or "", r.image_remote_url or "")
            for r in product.work.supporting_resources
            if product.id in r.product_ids
        ]

    def slot(self, product_id: int, kind: str, url: str) -> str:
        return self.slot_of(product_id, asset_in_url(url) or "")

    def _create(
        self, client: ConsonanceClient, product_id: int, wanted: dict[str, Any]
    ) -> tuple[int, str, str, str]:
        made = client.create_supporting_resource(
            product_id=product_id,
            content_type=wanted["type"],
            url=wanted["url"],
            caption=wanted["caption"],
            filename=wanted["caption"].replace(" ", "-"),
        )
        return made.id, made.caption or "", made.resource_content_type or "", made.image_remote_url or ""

    def _delete(self, client: ConsonanceClient, reference_id: int) -> None:
        client.delete_supporting_resource(reference_id)


@dataclass
class ProductionFileTarget(ConsonanceReferenceTarget):
    """Production files: slot = the package requirement the file meets (its type)."""

    def references(self, product: ProductResources) -> list[tuple[int, str, str, str]]:
        return [(f.id, f.caption or "", f.file_type, f.url) for f in product.production_files]

    def slot(self, product_id: int, kind: str, url: str) -> str:
        return kind

    def _create(
        self, client: ConsonanceClient, product_id: int, wanted: dict[str, Any]
    ) -> tuple[int, str, str, str]:
        made = client.create_production_file(
            product_id=product_id, file_type=wanted["type"], url=wanted["url"], caption=wanted["caption"]
        )
        return made.id, made.caption or "", made.file_type, made.url

    def _delete(self, client: ConsonanceClient, reference_id: int) -> None:
        client.delete_production_file(reference_id)
