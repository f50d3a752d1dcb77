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
from consodam_pipeline.clients.opentext_dam import content_url
from consodam_pipeline.domain.canonical import canonical_json
from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.store.tables import PARTITION_COLUMN
from consodam_pipeline.sync.target import Found, Outcome, WriteTarget, found_frame

_ASSET_IN_URL = re.compile(r"/otmmapi/v6/assets/([^/]+)/contents$")


def slot_key(product_id: int, slot: str) -> str:
    return f"{product_id}|{slot}"


def product_of(key: str) -> int:
    return int(key.split("|", 1)[0])


def reference_state(caption: str, kind: str, url: str) -> str:
    return canonical_json({"caption": caption, "type": kind, "url": url})


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
        return content_url(self.dam_url, asset_id)

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

    def read(self, client: ConsonanceClient, product_ids: Sequence[int]) -> pl.DataFrame:
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
        observed = self.read(client, [product_of(key)])
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


@dataclass
class AssetLinkTarget(SupportingResourceTarget):
    """consonance_asset_links for one run: each live link of the period's editions as a supporting resource.
    `titles` is every edition Consonance has (a link recorded on one that is gone is removed by its stored
    id); `inventory` says why a version is no longer linked."""

    editions: pl.DataFrame = field(default_factory=pl.DataFrame)
    titles: pl.DataFrame = field(default_factory=pl.DataFrame)
    inventory: pl.DataFrame = field(default_factory=pl.DataFrame)
    held: pl.DataFrame = field(default_factory=pl.DataFrame)  # key → the version an unwanted slot held

    def observe(self, client: ConsonanceClient, store: LineageStore) -> pl.DataFrame:
        return pl.concat([self.read(client, self.editions["product_id"].to_list()), self._vanished(store)])

    def _vanished(self, store: LineageStore) -> pl.DataFrame:
        """Found rows for links recorded on editions Consonance no longer has: removed by their stored id."""
        known = set(self.titles["product_id"].to_list())
        keys = [k for k in store.history.open_keys(self.entity) if product_of(k) not in known]
        rows = []
        for key, payload in store.history.open_payload_map(self.entity, keys).items():
            stored = json.loads(payload)
            handle = stored.get("handle") or stored.get("resource_id")  # older builds stored `resource_id`
            if handle is not None:
                rows.append(Found(key, str(handle), canonical_json(stored.get("state") or {})))
        return found_frame(rows)

    def scope(self, found: pl.DataFrame, store: LineageStore) -> list[str]:
        """What Consonance shows and what consodam recorded on the period's editions."""
        products = set(self.editions["product_id"].to_list())
        recorded = [k for k in store.history.open_keys(self.entity) if product_of(k) in products]
        return sorted({*found["key"].to_list(), *recorded})

    def removal_reasons(
        self, keys: Sequence[str], found: pl.DataFrame, store: LineageStore
    ) -> dict[str, str]:
        """Why each slot is no longer wanted, from the version it held (kept in `held` for the ledger)."""
        held = {k: asset_in_url(json.loads(s)["url"]) for k, s in found.select("key", "state").iter_rows()}
        for key, payload in store.history.open_payload_map(
            self.entity, [k for k in keys if k not in held]
        ).items():
            stored = json.loads(payload)
            held[key] = asset_in_url((stored.get("state") or {}).get("url")) or stored.get("asset_id")
        columns = ["asset_id", "version", "approval_status", "orphan_tag"]
        versions = {r["asset_id"]: r for r in self.inventory.select(columns).iter_rows(named=True)}
        products = set(self.titles["product_id"].to_list())
        reasons = {
            key: _link_gone(product_of(key) in products, versions.get(held.get(key) or "")) for key in keys
        }
        self.held = pl.DataFrame(
            [(k, held.get(k), (versions.get(held.get(k) or "") or {}).get("version")) for k in keys],
            schema={"key": pl.String, "dam_asset_id": pl.String, "dam_version": pl.Int64},
            orient="row",
        )
        return reasons

    def slots(self, keys: Sequence[str], desired: pl.DataFrame) -> pl.DataFrame:
        """Every slot considered, with what its ledger events name and the partition it belongs to."""
        split = pl.col("key").str.split("|")
        base = pl.DataFrame({"key": list(keys)}, schema={"key": pl.String}).with_columns(
            split.list.first().cast(pl.Int64).alias("product_id"), split.list.last().alias("role")
        )
        named = desired.drop("state", "role", "isbn13", "work_id", strict=False)
        about = pl.concat([named, self.held], how="diagonal_relaxed").unique(subset="key", keep="first")
        editions = self.titles.select("product_id", "isbn13", "work_id", "period")
        return (
            base.join(editions, on="product_id", how="left")
            .join(about, on="key", how="left")
            .rename({"period": PARTITION_COLUMN})
        )


def _link_gone(edition_there: bool, version: Mapping[str, Any] | None) -> str:
    if not edition_there:
        return "edition_gone"
    if version is None:
        return "version_deleted"
    if version["orphan_tag"]:
        return "version_untagged"
    if version["approval_status"] == "rejected":
        return "version_rejected"
    if version["approval_status"] != "approved":
        return "version_not_approved"
    return "no_longer_linked"


@dataclass
class PackageFileTarget(ProductionFileTarget):
    """consonance_production_files for one run: `slots_of` names every requirement slot of the period's
    editions (key, what the ledger names, `status`, the partition)."""

    slots_of: pl.DataFrame = field(default_factory=pl.DataFrame)

    def observe(self, client: ConsonanceClient, store: LineageStore) -> pl.DataFrame:
        return self.read(client, self.slots_of["product_id"].unique().to_list())

    def scope(self, found: pl.DataFrame, store: LineageStore) -> list[str]:
        return sorted({*found["key"].to_list(), *self.slots_of["key"].to_list()})

    def removal_reasons(
        self, keys: Sequence[str], found: pl.DataFrame, store: LineageStore
    ) -> dict[str, str]:
        statuses = dict(self.slots_of.select("key", "status").iter_rows())
        return {k: f"requirement_{statuses[k]}" for k in keys if statuses.get(k, "approved") != "approved"}

    def slots(self, keys: Sequence[str], desired: pl.DataFrame) -> pl.DataFrame:
        return self.slots_of.drop("product_id")
