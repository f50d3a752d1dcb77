"""Supporting resources consodam keeps on Consonance editions: a write target whose slots are
(edition, what the resource is for), each filled by one resource pointing at a DAM version.

consodam owns the resources whose URL points into the DAM it syncs from (`…/otmmapi/v6/assets/`); a
person's own uploads are never touched. A slot's state is the resource's caption, content type (ONIX
List 158) and URL, in canonical JSON: a resource that differs is replaced, never edited.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import polars as pl

from consodam_pipeline.clients.consonance import ConsonanceClient, SupportingResource
from consodam_pipeline.sync.engine import Found, Outcome, WriteTarget, found_frame, state_json

_ASSET_IN_URL = re.compile(r"/otmmapi/v6/assets/([^/]+)/contents$")


def slot_key(product_id: int, slot: str) -> str:
    return f"{product_id}|{slot}"


def product_of(key: str) -> int:
    return int(key.split("|", 1)[0])


def resource_state(caption: str, content_type: str, url: str) -> str:
    return state_json({"caption": caption, "content_type": content_type, "url": url})


def asset_in_url(url: str | None) -> str | None:
    match = _ASSET_IN_URL.search(url or "")
    return match.group(1) if match else None


@dataclass
class SupportingResourceTarget(WriteTarget[ConsonanceClient]):
    entity: str
    written_event: str
    removed_event: str
    dam_url: str  # resources pointing into this DAM are consodam's
    isbns: Mapping[int, str] = field(default_factory=dict)  # product id → ISBN, to read editions back
    slot_of: Callable[[int, str], str] = lambda product_id, asset_id: (
        asset_id
    )  # which slot a DAM version fills
    system: str = "consonance"

    def content_url(self, asset_id: str) -> str:
        return f"{self.dam_url.rstrip('/')}/otmmapi/v6/assets/{asset_id}/contents"

    def owns(self, resource: SupportingResource) -> bool:
        return (resource.image_remote_url or "").startswith(f"{self.dam_url.rstrip('/')}/otmmapi/v6/assets/")

    def _found(self, product_id: int, resource: SupportingResource) -> Found:
        asset_id = asset_in_url(resource.image_remote_url) or ""
        state = resource_state(resource.caption or "", resource.resource_content_type or "",
                               resource.image_remote_url or "")  # fmt: skip
        return Found(slot_key(product_id, self.slot_of(product_id, asset_id)), str(resource.id), state)

    def observe(self, client: ConsonanceClient, product_ids: Sequence[int]) -> pl.DataFrame:
        """The resources consodam owns on these editions, as Consonance shows them now."""
        isbns = [self.isbns[p] for p in product_ids if p in self.isbns]
        found = [
            self._found(product.id, resource)
            for product in client.products_with_resources(isbns)
            for resource in product.resources
            if self.owns(resource)
        ]
        return found_frame(found)

    def create(self, client: ConsonanceClient, key: str, state: str) -> Found:
        wanted = json.loads(state)
        product_id = product_of(key)
        created = client.create_supporting_resource(
            product_id=product_id, content_type=wanted["content_type"], url=wanted["url"],
            caption=wanted["caption"], filename=wanted["caption"].replace(" ", "-"),
        )  # fmt: skip
        return self._found(product_id, created)

    def update(self, client: ConsonanceClient, found: Found, state: str) -> Found:
        raise NotImplementedError("supporting resources are replaced, never edited")  # decide() never asks

    def delete(self, client: ConsonanceClient, found: Found) -> None:
        client.delete_supporting_resource(int(found.handle))

    def lookup(self, client: ConsonanceClient, key: str) -> list[Found]:
        product_id = product_of(key)
        observed = self.observe(client, [product_id])
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
