"""DAM metadata consodam owns on asset versions (title tags, rights fields and security policies): a
write target whose slots are existing versions, written lock → update → unlock.

The state of a slot is `{"fields": {field id: value}, "policies": [ids]}` (policies only when the
target owns them), in canonical JSON, for what the DAM shows as for what consodam wants.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import polars as pl

from consodam_pipeline.clients.dam_models import DamAsset
from consodam_pipeline.clients.http import ApiError
from consodam_pipeline.clients.opentext_dam import DamClient
from consodam_pipeline.domain.canonical import canonical_json
from consodam_pipeline.domain.timestamps import parse_ts, to_naive_utc
from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.store.tables import PARTITION_COLUMN
from consodam_pipeline.sync.target import FOUND_SCHEMA, Found, WriteTarget

LOCK_BATCH = 100


@dataclass
class DamFieldsTarget(WriteTarget[DamClient]):
    entity: str
    written_event: str
    prefix: str  # consodam owns every metadata field whose id starts with this
    with_policies: bool = False
    removed_event: str = "dam_fields_cleared"
    system: str = "dam"
    single: bool = True
    batch: int = LOCK_BATCH
    # One run: the versions it writes, as the last ingest saw them, each with its period (`partition_key`);
    # the period's editions (isbn13, work_id); every version id the inventory holds.
    versions: pl.DataFrame = field(default_factory=pl.DataFrame)
    editions: pl.DataFrame = field(default_factory=pl.DataFrame)
    held: frozenset[str] = frozenset()
    deleted: pl.DataFrame = field(default_factory=pl.DataFrame)  # the period's recorded versions the DAM lost

    def for_run(
        self, versions: pl.DataFrame, editions: pl.DataFrame, held: frozenset[str]
    ) -> DamFieldsTarget:
        return replace(self, versions=versions, editions=editions, held=held)

    def state(self, fields: dict[str, Any], policies: Sequence[int]) -> str:
        owned: dict[str, Any] = {"fields": {k: v for k, v in fields.items() if k.startswith(self.prefix)}}
        if self.with_policies:
            owned["policies"] = sorted(policies)
        return canonical_json(owned)

    def _found(self, key: str, asset: DamAsset) -> Found:
        fields = {k: v for k, v in asset.fields().items() if v is not None}
        state = self.state(fields, [p.id for p in asset.security_policy_list])
        return Found(key, asset.asset_id, state, stamp=asset.date_last_updated)

    def update(self, client: DamClient, found: Found, state: str) -> Found:
        wanted = json.loads(state)
        values: dict[str, Any] = dict.fromkeys(json.loads(found.state)["fields"])  # what is there, cleared
        values.update(wanted["fields"])
        policies = wanted.get("policies") if self.with_policies else None
        return self._found(found.key, client.update_metadata(found.handle, values, policies))

    def create(self, client: DamClient, key: str, state: str) -> Found:
        raise ApiError(f"PATCH /otmmapi/v6/assets/{key}", 1, "the asset version is not in the DAM")

    def delete(self, client: DamClient, found: Found) -> None:
        raise ApiError(f"PATCH /otmmapi/v6/assets/{found.handle}", 1, "fields are cleared, never deleted")

    def lookup(self, client: DamClient, key: str) -> list[Found]:
        return [self._found(key, client.get_asset(key))]

    @contextmanager
    def session(self, client: DamClient, handles: Sequence[str]) -> Iterator[set[str]]:
        if not handles:
            yield set()
            return
        with client.locked(handles) as held:
            yield set(held)

    def observe(self, client: DamClient, store: LineageStore) -> pl.DataFrame:
        return self.observed(self.versions)

    def scope(self, found: pl.DataFrame, store: LineageStore) -> list[str]:
        """The versions of the period's editions consodam recorded fields on that the DAM no longer holds
        (deleted): their records are closed, so the audit never answers fields on a version that is gone."""
        isbns, works = self.editions["isbn13"].to_list(), self.editions["work_id"].cast(pl.String).to_list()
        gone = sorted(store.history.keys_about(self.entity, isbns, works) - self.held)
        named = store.ledger.last_named(gone)
        self.deleted = pl.DataFrame(
            [
                (
                    k,
                    named.get(k, {}).get("isbn13"),
                    named.get(k, {}).get("work_id"),
                    k,
                    named.get(k, {}).get("dam_version"),
                    named.get(k, {}).get("role"),
                )
                for k in gone
            ],
            schema={
                "key": pl.String,
                "isbn13": pl.String,
                "work_id": pl.String,
                "dam_asset_id": pl.String,
                "dam_version": pl.Int64,
                "role": pl.String,
            },
            orient="row",
        )
        return gone

    def removal_reasons(
        self, keys: Sequence[str], found: pl.DataFrame, store: LineageStore
    ) -> dict[str, str]:
        return dict.fromkeys(keys, "version_deleted")

    def slots(self, keys: Sequence[str], desired: pl.DataFrame) -> pl.DataFrame:
        present = self.versions.select(
            pl.col("asset_id").alias("key"),
            "isbn13",
            pl.col("work_id").cast(pl.String),
            pl.col("asset_id").alias("dam_asset_id"),
            pl.col("version").alias("dam_version"),
            "role",
            PARTITION_COLUMN,
        )
        return pl.concat([present, self.deleted], how="diagonal_relaxed")

    def observed(self, inventory: pl.DataFrame) -> pl.DataFrame:
        """What the DAM showed at the last ingest, as found rows (key = handle = asset version id)."""
        states = [
            self.state({t["id"]: t["value"] for t in row["tags"] or []}, row["security_policy_ids"] or [])
            for row in inventory.select("tags", "security_policy_ids").iter_rows(named=True)
        ]
        changed = [to_naive_utc(parse_ts(t)) if t else None for t in inventory["modified_at"].to_list()]
        columns = {"key": inventory["asset_id"], "handle": inventory["asset_id"], "state": states}
        return pl.DataFrame(
            {**columns, "changed_at": changed, "stamp": inventory["modified_at"]}, schema=FOUND_SCHEMA
        )
