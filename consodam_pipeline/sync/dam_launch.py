"""The F6 write targets in the DAM: title sheets, and launch collection membership.

- title sheet: one slot per edition (its ISBN), an asset whose file is the edition's ONIX 3.0 message
  (role `title_sheet`, the content's SHA-256 in CONSODAM.SHEET.SHA). A sheet is imported once (the DAM's
  asynchronous import job) and versioned when the title data changes; both are creates, so after an
  ambiguous reply the sheet is looked up by ISBN and its SHA before anything is tried again.
- membership: one slot per (collection, asset version); state names both. Adding a member is a PUT (safe
  to repeat); creating a collection is not (looked up by name first).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from consodam_pipeline.clients.http import AmbiguousWrite
from consodam_pipeline.clients.opentext_dam import FIELD, DamAsset, DamClient, condition
from consodam_pipeline.domain.launch import COLLECTION_PREFIX
from consodam_pipeline.domain.roles import AssetRole
from consodam_pipeline.sync.engine import Found, WriteTarget, found_frame, state_json

SHEET_SHA = "CONSODAM.SHEET.SHA"
SHEET_MIME = "application/xml"


def sheet_sha(xml: str) -> str:
    return hashlib.sha256(xml.encode()).hexdigest()


def sheet_state(sha: str) -> str:
    return state_json({"sha": sha})


def member_key(collection: str, asset_id: str) -> str:
    return f"{collection}|{asset_id}"


def member_state(collection: str, asset_id: str) -> str:
    return state_json({"asset_id": asset_id, "collection": collection})


@dataclass
class TitleSheetTarget(WriteTarget[DamClient]):
    sheets: Mapping[str, str] = field(default_factory=dict)  # ISBN → the ONIX message to publish
    # ISBN → the title tags (F3) the sheet is imported with, so the tag sync finds it already right
    tags: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    entity: str = "dam_title_sheet"
    written_event: str = "title_sheet_published"
    removed_event: str = "title_sheet_withdrawn"
    system: str = "dam"
    single: bool = True

    def _found(self, asset: DamAsset) -> Found:
        fields = asset.fields()
        return Found(
            str(fields.get(FIELD + "ISBN")),
            asset.asset_id,
            sheet_state(str(fields.get(SHEET_SHA))),
            stamp=asset.date_last_updated,
        )

    def observe(self, client: DamClient, isbns: Iterable[str] | None = None) -> pl.DataFrame:
        """The newest version of each title sheet in the DAM (of these editions, or all)."""
        wanted = None if isbns is None else set(isbns)
        sheets = client.search([condition(FIELD + "ROLE", AssetRole.TITLE_SHEET.value)], all_versions=False)
        return found_frame([f for f in map(self._found, sheets) if wanted is None or f.key in wanted])

    def _metadata(self, isbn: str, sha: str) -> dict[str, str]:
        return {
            **self.tags.get(isbn, {}),
            FIELD + "ROLE": AssetRole.TITLE_SHEET.value,
            FIELD + "ISBN": isbn,
            SHEET_SHA: sha,
        }

    def create(self, client: DamClient, key: str, state: str) -> Found:
        sha = json.loads(state)["sha"]
        asset_id = client.import_asset(
            name=f"{key} title sheet.xml",
            mime_type=SHEET_MIME,
            metadata=self._metadata(key, sha),
            content=self.sheets[key],
        )
        return self._found(client.get_asset(asset_id))

    def update(self, client: DamClient, found: Found, state: str) -> Found:
        sha = json.loads(state)["sha"]
        try:
            asset_id = client.import_version(
                found.handle,
                metadata={**self.tags.get(found.key, {}), SHEET_SHA: sha},
                content=self.sheets[found.key],
            )
        except AmbiguousWrite:
            landed = [f for f in self.lookup(client, found.key) if f.state == state]
            if not landed:
                raise
            return landed[0]
        return self._found(client.get_asset(asset_id))

    def delete(self, client: DamClient, found: Found) -> None:
        raise NotImplementedError("a title sheet stays in the DAM; its collections are what changes")

    def lookup(self, client: DamClient, key: str) -> list[Found]:
        hits = client.search(
            [condition(FIELD + "ISBN", key), condition(FIELD + "ROLE", AssetRole.TITLE_SHEET.value)],
            all_versions=False,
        )
        return [self._found(a) for a in hits]


@dataclass
class CollectionMemberTarget(WriteTarget[DamClient]):
    collection_ids: dict[str, str] = field(default_factory=dict)  # name → id, filled as they are read or made
    entity: str = "dam_collection_member"
    written_event: str = "published_to_collection"
    removed_event: str = "removed_from_collection"
    system: str = "dam"

    def observe(self, client: DamClient, owned: set[str]) -> pl.DataFrame:
        """Members of the launch collections that are these asset versions (this period's)."""
        self.collection_ids.update(client.collections())
        found = [
            Found(member_key(name, asset), member_key(name, asset), member_state(name, asset))
            for name, cid in sorted(self.collection_ids.items())
            if name.startswith(COLLECTION_PREFIX)
            for asset in client.collection_assets(cid)
            if asset in owned
        ]
        return found_frame(found)

    def _collection(self, client: DamClient, name: str) -> str:
        if name not in self.collection_ids:
            self.collection_ids.update(client.collections())  # made meanwhile by another run?
        if name not in self.collection_ids:
            try:
                self.collection_ids[name] = client.create_collection(name)
            except AmbiguousWrite:
                self.collection_ids.update(client.collections())
                if name not in self.collection_ids:
                    raise
        return self.collection_ids[name]

    def create(self, client: DamClient, key: str, state: str) -> Found:
        wanted: dict[str, Any] = json.loads(state)
        client.add_to_collection(self._collection(client, wanted["collection"]), [wanted["asset_id"]])
        return Found(key, key, state)

    def update(self, client: DamClient, found: Found, state: str) -> Found:
        raise NotImplementedError("a membership is added or removed, never edited")

    def delete(self, client: DamClient, found: Found) -> None:
        wanted = json.loads(found.state)
        cid = self.collection_ids.get(wanted["collection"])
        if cid is not None:
            client.remove_from_collection(cid, wanted["asset_id"])

    def lookup(self, client: DamClient, key: str) -> list[Found]:
        name, asset = key.rsplit("|", 1)
        cid = self.collection_ids.get(name)
        members = client.collection_assets(cid) if cid else []
        return [Found(key, key, member_state(name, asset))] if asset in members else []


def members(rows: Sequence[tuple[str, str]]) -> pl.DataFrame:
    """(collection, asset id) pairs as desired slots."""
    return pl.DataFrame(
        [(member_key(c, a), member_state(c, a)) for c, a in rows],
        schema={"key": pl.String, "state": pl.String},
        orient="row",
    )
