"""What each system holds, read back over its API, against what consodam should have written: the check a
deployment, a benchmark or a test makes after faults, kills and concurrent runs.

- Consonance: one supporting resource per live link (approved_version_links), none twice, none stale.
- The DAM: every restriction and title-tag field consodam owns equals its desired value, read fresh.
- The DAM's review tasks: no open task twice for one version and requirement.
- The lineage store: no write recorded twice in the ledger, and how many items are pending.
- Any database: which text columns hold a given secret (there should be none).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import polars as pl
import sqlalchemy as sa

from consodam_pipeline.clients.opentext_dam import OpenTextDamResource
from consodam_pipeline.derived.restrictions import RESTRICTIONS, desired_restrictions
from consodam_pipeline.derived.rights_matrix import asset_grants
from consodam_pipeline.derived.title_tags import TITLE_TAGS, desired_tags
from consodam_pipeline.sandbox.process import SandboxProcess
from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.sync.consonance_resources import asset_in_url
from consodam_pipeline.sync.dam_ingest import normalize_versions, orphan_tag, typed_inventory

# Ledger events that record a write consodam made (each exactly once per object and version).
WRITE_EVENTS = (
    "restriction_applied",
    "tags_written",
    "link_written",
    "package_referenced",
    "review_task_opened",
    "published_to_collection",
)


@dataclass
class Holdings:
    """The differences found; every figure 0 (and `pending` as expected) means the systems are exact."""

    links: int = 0
    duplicates: int = 0
    missing: int = 0
    stale: int = 0
    dam_fields_differing: int = 0
    dam_fields_checked: int = 0
    review_tasks_twice: int = 0
    ledger_writes_twice: int = 0
    pending: int = 0
    examples: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        wrong = (self.duplicates, self.missing, self.stale, self.dam_fields_differing)
        return not any(wrong) and not self.review_tasks_twice and not self.ledger_writes_twice

    def line(self) -> str:
        return (
            f"{self.links} links: {self.duplicates} twice, {self.missing} missing, {self.stale} stale; "
            f"{self.dam_fields_differing} of {self.dam_fields_checked} DAM field sets differ; "
            f"{self.review_tasks_twice} review tasks twice; {self.ledger_writes_twice} ledger writes twice; "
            f"{self.pending} pending"
        )


def consonance_dam_resources(sandbox: SandboxProcess) -> Iterator[tuple[int, int, str]]:
    """(product, resource id, URL) of every supporting resource Consonance holds pointing into the DAM."""
    after = 0
    while True:
        products = sandbox.graphql(
            "query($a: Int) { products(productSearch: {after: $a}, limit: 500) {"
            " id work { supportingResources { id imageRemoteUrl productIds } } } }",
            {"a": after},
        )["data"]["products"]
        for product in products:
            for resource in product["work"]["supportingResources"]:
                url = resource["imageRemoteUrl"]
                if product["id"] in resource["productIds"] and "/otmmapi/v6/assets/" in url:
                    yield product["id"], resource["id"], url
        if len(products) < 500:
            return
        after = products[-1]["id"]


def consonance_holdings(sandbox: SandboxProcess) -> Counter[tuple[int, str]]:
    """(product, linked asset) → how many supporting resources Consonance holds for it into the DAM."""
    return Counter((product, str(asset_in_url(url))) for product, _, url in consonance_dam_resources(sandbox))


def dam_inventory(sandbox: SandboxProcess) -> pl.DataFrame:
    """Every DAM version as the ingest types it, read now."""
    dam = OpenTextDamResource(url=sandbox.dam_url, page_size=500)
    with dam.client() as client:
        pages = [normalize_versions(page)[0] for page in client.iter_asset_frames(all_versions=True)]
    return typed_inventory(pl.concat(pages, how="diagonal_relaxed").lazy()).collect()


def dam_differences(sandbox: SandboxProcess, tables: Path) -> tuple[int, int, list[str]]:
    """(field sets differing, field sets checked, a few examples) for restrictions and title tags."""
    titles = pl.read_parquet(tables / "title_metadata_snapshot.parquet")
    inventory = dam_inventory(sandbox).with_columns(orphan_tag(titles))
    matrix = pl.read_parquet(tables / "rights_matrix").with_columns(pl.lit("any").alias("period"))
    wanted = (
        (RESTRICTIONS, desired_restrictions(asset_grants(matrix), datetime.now(UTC).date())),
        (TITLE_TAGS, desired_tags(titles, inventory)),
    )
    differing, checked, examples = 0, 0, []
    for target, desired in wanted:
        observed = target.observed(inventory.join(desired.select("asset_id"), on="asset_id", how="semi"))
        joined = desired.join(observed.select(pl.col("key").alias("asset_id"), "state"), on="asset_id")
        wrong = joined.filter(pl.col("desired") != pl.col("state"))
        differing += wrong.height + (desired.height - joined.height)
        checked += desired.height
        examples += [f"{target.entity} {r['asset_id']}" for r in wrong.head(3).iter_rows(named=True)]
    return differing, checked, examples


def review_tasks_twice(sandbox: SandboxProcess) -> int:
    """Open review tasks for one version and requirement beyond the first."""
    tasks = httpx.get(
        f"{sandbox.dam_url}/otmmapi/v6/reviewtasks",
        headers={"Authorization": f"Bearer {sandbox.dam_token()}"},
        timeout=60,
    ).json()["review_tasks"]
    open_tasks = Counter(
        (t["kind"], t["asset_id"], t["isbn"], t["milestone"], t["requirement"])
        for t in tasks
        if t.get("status") in (None, "open")
    )
    return sum(n - 1 for n in open_tasks.values() if n > 1)


def holdings(sandbox: SandboxProcess, tables: Path, store: LineageStore) -> Holdings:
    """Every check above, in one report."""
    links = pl.read_parquet(tables / "approved_version_links")
    wanted = set(links.select("product_id", "asset_id").iter_rows())
    held = consonance_holdings(sandbox)
    differing, checked, examples = dam_differences(sandbox, tables)
    return Holdings(
        links=len(wanted),
        duplicates=sum(n - 1 for n in held.values() if n > 1),
        missing=len(wanted - set(held)),
        stale=len(set(held) - wanted),
        dam_fields_differing=differing,
        dam_fields_checked=checked,
        review_tasks_twice=review_tasks_twice(sandbox),
        ledger_writes_twice=store.ledger.repeated(WRITE_EVENTS),
        pending=store.bookkeeping.pending_count(),
        examples=examples,
    )


def database_mentions(url: str, secrets: list[str]) -> list[str]:
    """table.column of every text column in the database holding one of the secrets."""
    engine = sa.create_engine(url)
    found = []
    try:
        with engine.connect() as conn:
            columns = conn.execute(
                sa.text(
                    "SELECT table_schema, table_name, column_name FROM information_schema.columns "
                    "WHERE data_type IN ('text', 'character varying') "
                    "AND table_schema NOT IN ('pg_catalog', 'information_schema')"
                )
            ).all()
            for schema, table, column in columns:
                for secret in secrets:
                    query = sa.text(f'SELECT 1 FROM "{schema}"."{table}" WHERE "{column}" LIKE :s LIMIT 1')
                    if conn.execute(query, {"s": f"%{secret}%"}).first():
                        found.append(f"{schema}.{table}.{column}")
    finally:
        engine.dispose()
    return found
