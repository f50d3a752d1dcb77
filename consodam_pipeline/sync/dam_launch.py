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

from consodam_pipeline.clients.dam_models import FIELD, DamAsset
from consodam_pipeline.clients.http import AmbiguousWrite
from consodam_pipeline.clients.opentext_dam import DamClient, condition
from consodam_pipeline.domain.canonical import canonical_json
from consodam_pipeline.domain.launch import COLLECTION_PREFIX, NOT_LAUNCHED
from consodam_pipeline.domain.roles import AssetRole
from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.store.tables import PARTITION_COLUMN
from consodam_pipeline.sync.target import SHARED, Found, WriteTarget, found_frame

SHEET_SHA = "CONSODAM.SHEET.SHA"
SHEET_MIME = "application/xml"


def sheet_sha(xml: str) -> str:
    return hashlib.sha256(xml.encode()).hexdigest()


def sheet_state(sha: str) -> str:
    return canonical_json({"sha": sha})


def member_key(collection: str, asset_id: str) -> str:
    return f"{collection}|{asset_id}"


def member_state(collection: str, asset_id: str) -> str:
    return canonical_json({"asset_id": asset_id, "collection": collection})


@dataclass
class TitleSheetTarget(WriteTarget[DamClient]):
    sheets: Mapping[str, str] = field(default_factory=dict)  # ISBN → the ONIX message to publish
    # ISBN → the title tags (F3) the sheet is imported with, so the tag sync finds it already right
    tags: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    editions: pl.DataFrame = field(default_factory=pl.DataFrame)  # the period's editions (isbn13, work_id)
    entity: str = "dam_title_sheet"
    written_event: str = "title_sheet_published"
    removed_event: str = "title_sheet_withdrawn"
    system: str = "dam"
    single: bool = True
    handle_is_asset: bool = True

    def _found(self, asset: DamAsset) -> Found:
        fields = asset.fields()
        return Found(
            str(fields.get(FIELD + "ISBN")),
            asset.asset_id,
            sheet_state(str(fields.get(SHEET_SHA))),
            stamp=asset.date_last_updated,
        )

    def observe(self, client: DamClient, store: LineageStore) -> pl.DataFrame:
        return self.newest(client, self.sheets)

    def slots(self, keys: Sequence[str], desired: pl.DataFrame) -> pl.DataFrame:
        return self.editions.select(
            pl.col("isbn13").alias("key"),
            "isbn13",
            "work_id",
            pl.lit(AssetRole.TITLE_SHEET.value).alias("role"),
            pl.lit(None, pl.String).alias(PARTITION_COLUMN),
        )

    def every_version(self, client: DamClient) -> list[str]:
        """Every version of the period's title sheets (older ones may still sit in a collection)."""
        isbns = set(self.editions["isbn13"].to_list())
        sheets = client.search([condition(FIELD + "ROLE", AssetRole.TITLE_SHEET.value)], all_versions=True)
        return [a.asset_id for a in sheets if a.fields().get(FIELD + "ISBN") in isbns]

    def newest(self, client: DamClient, isbns: Iterable[str] | None = None) -> pl.DataFrame:
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

    def members_of(self, client: DamClient, owned: set[str]) -> pl.DataFrame:
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


def wanted_members(
    launching: pl.DataFrame, cleared: pl.DataFrame, newest_sheets: Mapping[str, str]
) -> list[tuple[str, str]]:
    """(collection, asset id) of every member: each cleared version, and each edition's newest title sheet."""
    assets = cleared.filter(pl.col("allowed")).select("collection", "asset_id").unique().rows()
    sheets = [
        (c, newest_sheets[i])
        for c, i in launching.select("collection", "isbn13").iter_rows()
        if i in newest_sheets
    ]
    return sorted(set(assets) | set(sheets))


def members(rows: Sequence[tuple[str, str]]) -> pl.DataFrame:
    """(collection, asset id) pairs as desired slots."""
    return pl.DataFrame(
        [(member_key(c, a), member_state(c, a)) for c, a in rows],
        schema={"key": pl.String, "state": pl.String},
        orient="row",
    )


@dataclass
class LaunchMemberTarget(CollectionMemberTarget):
    """launch_collections' membership for one run, after its title sheets were published: `launching` (the
    editions launched today, each with its collection), `cleared` (their links, `allowed` where rights allow
    them at publication), `versions` (the period's DAM versions), `editions` (the period's editions, with
    their `period`), `newest` (ISBN → the newest title sheet version), `sheets` (every sheet version)."""

    launching: pl.DataFrame = field(default_factory=pl.DataFrame)
    cleared: pl.DataFrame = field(default_factory=pl.DataFrame)
    versions: pl.DataFrame = field(default_factory=pl.DataFrame)
    editions: pl.DataFrame = field(default_factory=pl.DataFrame)
    newest: dict[str, str] = field(default_factory=dict)
    sheets: set[str] = field(default_factory=set)

    def desired(self) -> pl.DataFrame:
        return members(wanted_members(self.launching, self.cleared, self.newest))

    def observe(self, client: DamClient, store: LineageStore) -> pl.DataFrame:
        return self.members_of(client, set(self.versions["asset_id"].to_list()) | self.sheets)

    def scope(self, found: pl.DataFrame, store: LineageStore) -> list[str]:
        return found["key"].to_list()

    def removal_reasons(
        self, keys: Sequence[str], found: pl.DataFrame, store: LineageStore
    ) -> dict[str, str]:
        """Why each member that should not be there is removed."""
        linked = dict(self.cleared.select("asset_id", "allowed").iter_rows())
        status = dict(self.versions.select("asset_id", "approval_status").iter_rows())
        owners = {
            r["asset_id"]: r
            for r in self.versions.select("asset_id", "isbn13", "work_id").iter_rows(named=True)
        }
        launching_isbns, launching_works = set(self.launching["isbn13"]), set(self.launching["work_id"])
        withdrawn = set(self.editions.filter(pl.col("publishing_status").is_in(list(NOT_LAUNCHED)))["isbn13"])
        reasons = {}
        for key in keys:
            asset = key.rsplit("|", 1)[1]
            isbn, work = (owners.get(asset) or {}).get("isbn13"), (owners.get(asset) or {}).get("work_id")
            in_window = (isbn in launching_isbns) if isbn else (work in launching_works)
            if asset in self.sheets and in_window:
                reasons[key] = "title_sheet_updated"
            elif not in_window:
                reasons[key] = "edition_withdrawn" if isbn in withdrawn else "left_the_launch_window"
            elif asset in linked and not linked[asset]:
                reasons[key] = "rights_no_longer_allow"
            elif status.get(asset) == "rejected":
                reasons[key] = "version_rejected"
            elif asset in linked:
                reasons[key] = "moved_to_another_collection"
            else:
                reasons[key] = "replaced_by_a_newer_link"
        return reasons

    def slots(self, keys: Sequence[str], desired: pl.DataFrame) -> pl.DataFrame:
        """Every member considered, with what its ledger events name (the edition it is published for: a
        shared asset names the launching edition it serves, else the first of its work) and the partition."""
        split = pl.col("key").str.split("|")
        frame = pl.DataFrame({"key": list(keys)}, schema={"key": pl.String}).with_columns(
            split.list.first().alias("collection"), split.list.last().alias("dam_asset_id")
        )
        serves = self.cleared.select(
            "collection", pl.col("asset_id").alias("dam_asset_id"), pl.col("isbn13").alias("serves")
        )
        sheets = pl.DataFrame(
            {"dam_asset_id": list(self.newest.values()), "sheet_isbn": list(self.newest)},
            schema={"dam_asset_id": pl.String, "sheet_isbn": pl.String},
        )
        about = self.versions.select(
            pl.col("asset_id").alias("dam_asset_id"),
            pl.col("version").alias("dam_version"),
            "role",
            "isbn13",
            "work_id",
        )
        first_of_work = (
            self.editions.sort("isbn13").group_by("work_id").agg(pl.col("isbn13").first().alias("of_work"))
        )
        sheet_role = pl.when(pl.col("sheet_isbn").is_not_null()).then(pl.lit(AssetRole.TITLE_SHEET.value))
        named = (
            frame.join(
                about.with_columns(pl.col("isbn13").is_null().alias(SHARED)), on="dam_asset_id", how="left"
            )
            .join(sheets, on="dam_asset_id", how="left")
            .join(
                serves.unique(["collection", "dam_asset_id"], keep="first"),
                on=["collection", "dam_asset_id"],
                how="left",
            )
            .join(first_of_work, on="work_id", how="left")
            .with_columns(
                pl.coalesce("isbn13", "sheet_isbn", "serves", "of_work").alias("isbn13"),
                pl.col("role").fill_null(sheet_role),
            )
        )
        periods = self.editions.select("isbn13", "work_id", pl.col("period").alias(PARTITION_COLUMN))
        return named.drop("work_id", "sheet_isbn", "serves", "of_work").join(periods, on="isbn13", how="left")
