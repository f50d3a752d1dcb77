"""approved_version_links (F1, F8, F7 history) for a slice of periods: the links computed from the DAM's approval
history, that history rebuilt into the audit ledger (one transaction: a killed backfill leaves nothing
half-written), links whose version was deleted closed; and the checks that guard them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import polars as pl

from consodam_pipeline.derived.link_closing import closing_events
from consodam_pipeline.derived.link_history import LinkHistory, link_history_chunks, owned
from consodam_pipeline.derived.period_inputs import fingerprint_cursor, period_fingerprints
from consodam_pipeline.domain.links import LINK_EVENTS, live_links
from consodam_pipeline.domain.periods import with_period, works_in
from consodam_pipeline.domain.roles import MARKETING_ROLES
from consodam_pipeline.domain.timestamps import utcnow
from consodam_pipeline.store.bulk import computed_ahead
from consodam_pipeline.store.ledger import Ledger
from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.store.tables import PARTITION_COLUMN
from consodam_pipeline.sync.consonance_resources import AssetLinkTarget, reference_state
from consodam_pipeline.sync.dam_ingest import VERSION_IDENTITY
from consodam_pipeline.sync.report import (
    EDITION_KEY_COLUMNS,
    VERSION_COLUMNS,
    VERSIONS,
    column_lineage,
    summary_markdown,
)

AGREEMENT_SAMPLE = 200
ASSET = "approved_version_links"
# Raise it when the rules or the events they derive change: every period is derived once again.
LINK_HISTORY_REVISION = "1"
EDITION_INPUTS = ["product_id", "isbn13", "work_id"]  # what the link history reads of an edition
LINK_EDITION_INPUTS = [*EDITION_INPUTS, "publication_date"]  # and what places it in its period
# The inventory columns the link history reads (the renditions, tags and restrictions stay on disk).
LINK_INPUTS = [*VERSION_IDENTITY, "approved_by", "approved_at", "approval_history", "orphan_tag"]
LINK_LINEAGE: dict[str, dict[str, list[str]]] = {
    **EDITION_KEY_COLUMNS,
    **VERSION_COLUMNS,
    "resource_content_type": {VERSIONS: ["role"]},
    "scope": {VERSIONS: ["isbn13", "work_id"]},
    "linked_since": {VERSIONS: ["approved_at", "approval_history"]},
}
LINK_CHECKS = [
    dg.AssetCheckSpec(name, asset="approved_version_links", blocking=True)
    for name in ("links_point_to_approved_versions", "one_live_link_per_role", "ledger_agrees_with_links")
]


@dataclass
class LinkRun:
    links: pl.DataFrame  # every live link of the slice, with its period
    derived: int = 0  # ledger events derived from the approval history
    new_events: int = 0  # of which the ledger did not hold yet (a replay adds nothing)
    closed_deleted: int = 0  # links closed because their version was deleted from the DAM
    recent: pl.DataFrame | None = None  # the newest link_created events, for the UI
    periods_derived: list[str] = field(default_factory=list)  # the others' inputs had not changed


def record_links(
    store: LineageStore,
    editions: pl.DataFrame,
    versions: pl.DataFrame,
    inventory_ids: pl.Series,
    run_id: str,
    periods: Sequence[str],
) -> LinkRun:
    """The slice's links, and their history appended to the ledger in one transaction, the periods locked
    (a run over the same periods closes deleted versions' links once, after this one)."""
    with store.locks.holding([f"link_history:{p}" for p in periods]):
        return _record_links(store, editions, versions, inventory_ids, run_id, periods)


def _record_links(
    store: LineageStore,
    editions: pl.DataFrame,
    versions: pl.DataFrame,
    inventory_ids: pl.Series,
    run_id: str,
    periods: Sequence[str],
) -> LinkRun:
    """A period whose editions and versions are those its history was last derived from gets its current
    links only: its ledger already holds every event a derivation would append (a replay of the backlist
    reads and hashes, and writes nothing)."""
    fingerprints = {
        fingerprint_cursor(ASSET, period): digest
        for period, digest in period_fingerprints(
            editions, versions, periods, EDITION_INPUTS, LINK_HISTORY_REVISION
        ).items()
    }
    run = LinkRun(links=LinkHistory().current)
    current, changes = [LinkHistory().current], [LinkHistory().events]
    with store.engine.begin() as conn:
        stale = store.cursors.changed(conn, fingerprints)
        run.periods_derived = sorted(p for p in periods if fingerprint_cursor(ASSET, p) in stale)
        derive = works_in(editions, run.periods_derived)
        settled = editions.join(derive.select("product_id"), on="product_id", how="anti")
        current += [
            part.current for part in link_history_chunks(settled, versions, run_id, with_events=False)
        ]
        isbns = derive["isbn13"].to_list()
        # Asked before the appends: a first backfill finds nothing, at no cost, whatever it adds next.
        linked = [
            pl.Series(sorted(store.ledger.linked_assets(conn, isbns)) if isbns else [], dtype=pl.String)
        ]
        with store.ledger.backfill(conn, derive.height) as appended:
            for part in computed_ahead(link_history_chunks(derive, versions, run_id)):
                run.new_events += store.ledger.record(conn, part.events)
                run.derived += part.events.height
                current.append(part.current)
                created = part.events.filter(pl.col("event_type") == "link_created")
                linked.append(created["dam_asset_id"].drop_nulls().unique())
                changes.append(owned(created.top_k(10, by="occurred_at")))
        run.new_events -= appended.duplicates
        closed = closing_events(
            conn, isbns, pl.concat(current), inventory_ids, pl.concat(linked), utcnow(), run_id
        )
        run.new_events += store.ledger.record(conn, closed)
        store.cursors.set_many(conn, {name: fingerprints[name] for name in stale}, run_id)
    run.closed_deleted = sum(e.event_type == "link_superseded" for e in closed)
    run.recent = pl.concat(changes).top_k(10, by="occurred_at").sort("occurred_at", descending=True)
    run.links = with_period(pl.concat(current), editions, PARTITION_COLUMN)
    return run


def link_checks(run: LinkRun, versions: pl.DataFrame, store: LineageStore) -> list[dg.AssetCheckResult]:
    return [
        links_are_approved(run.links, versions),
        one_link_per_role(run.links),
        ledger_agrees(store, run.links),
    ]


def links_are_approved(links: pl.DataFrame, versions: pl.DataFrame) -> dg.AssetCheckResult:
    approved = versions.lazy().filter((pl.col("approval_status") == "approved") & ~pl.col("orphan_tag"))
    dangling = links.join(approved.select("asset_id").collect(), on="asset_id", how="anti")
    return dg.AssetCheckResult(
        check_name="links_point_to_approved_versions",
        passed=dangling.height == 0,
        metadata={"links": links.height, "not_an_existing_approved_version": dangling.height},
    )


def one_link_per_role(links: pl.DataFrame) -> dg.AssetCheckResult:
    doubled = links.filter(pl.struct("product_id", "role").is_duplicated())
    return dg.AssetCheckResult(
        check_name="one_live_link_per_role",
        passed=doubled.height == 0,
        metadata={"duplicates": doubled.height},
    )


def ledger_agrees(store: LineageStore, links: pl.DataFrame) -> dg.AssetCheckResult:
    """For a sample of editions, the live links the ledger answers equal the links computed now."""
    sample = links.select("isbn13").unique().sort("isbn13").head(AGREEMENT_SAMPLE)["isbn13"].to_list()
    with store.engine.connect() as conn:
        histories = Ledger.events_of(conn, sample, LINK_EVENTS)
    computed: dict[str, dict[str, tuple[str, int]]] = {}
    sampled = links.filter(pl.col("isbn13").is_in(pl.Series(sample, dtype=pl.String).implode()))
    for row in sampled.iter_rows(named=True):
        computed.setdefault(row["isbn13"], {})[row["role"]] = (row["asset_id"], row["version"])
    mismatches = []
    for isbn in sample:
        history = sorted(histories.get(isbn, []), key=lambda e: (e["occurred_at"], e["event_id"]))
        from_ledger = {r: (e["dam_asset_id"], e["dam_version"]) for r, e in live_links(history).items()}
        if from_ledger != computed.get(isbn, {}):
            mismatches.append(isbn)
    return dg.AssetCheckResult(
        check_name="ledger_agrees_with_links",
        passed=not mismatches,
        metadata={
            "editions_compared": len(sample),
            "disagreeing": len(mismatches),
            "examples": ", ".join(mismatches[:5]) or "—",
        },
    )


def link_metadata(run: LinkRun, keys: list[str]) -> dict[str, Any]:
    recent = run.recent if run.recent is not None else pl.DataFrame()
    rows = [
        f"| {e['occurred_at']:%Y-%m-%d %H:%M} | {e['isbn13']} | {e['role']} | "
        f"{(e['dam_asset_id'] or '')[:10]} v{e['dam_version']} | {e['actor']} |"
        for e in recent.iter_rows(named=True)
    ]
    header = "| when | ISBN | role | version | approved by |\n|---|---|---|---|---|\n"
    summary = [
        ("links", run.links.height),
        (
            "periods derived",
            f"{len(run.periods_derived)} of {len(keys)} (the others' inputs had not changed)",
        ),
        ("events derived", run.derived),
        ("new in ledger", run.new_events),
    ]
    return {
        "dagster/row_count": run.links.height,
        "dagster/column_lineage": column_lineage(LINK_LINEAGE, run.links.columns),
        "partitions": len(keys),
        "periods_derived": len(run.periods_derived),
        "events_derived": run.derived,
        "events_new_in_ledger": run.new_events,
        "links_closed_version_deleted": run.closed_deleted,
        "latest_link_changes": dg.MetadataValue.md(header + "\n".join(rows)),
        "summary": summary_markdown("Approved version links", summary),
    }


LINK_ENTITY = "consonance_link"
ROLES = MARKETING_ROLES  # the slots a product can have links in


def link_writes(
    links: pl.DataFrame, titles: pl.DataFrame, inventory: pl.DataFrame, keys: list[str], dam_url: str
) -> tuple[AssetLinkTarget, pl.DataFrame]:
    """consonance_asset_links for these periods: the target, and (key, state + what the ledger names) for
    every live link."""
    roles = dict(inventory.select("asset_id", "role").iter_rows())
    target = AssetLinkTarget(
        entity=LINK_ENTITY,
        written_event="link_written",
        removed_event="link_removed",
        dam_url=dam_url,
        isbns=dict(titles.select("product_id", "isbn13").iter_rows()),
        slot_of=lambda _product, asset_id: roles.get(asset_id, f"?{asset_id}"),
        editions=works_in(titles, keys),
        titles=with_period(titles, titles, "period"),
        inventory=inventory,
    )
    state = pl.struct("role", "version", "resource_content_type", "asset_id").map_elements(
        lambda r: reference_state(
            f"{r['role']} v{r['version']}", r["resource_content_type"], target.content_url(r["asset_id"])
        ),
        return_dtype=pl.String,
    )
    desired = links.select(
        pl.format("{}|{}", "product_id", "role").alias("key"),
        state.alias("state"),
        "isbn13",
        "work_id",
        pl.col("asset_id").alias("dam_asset_id"),
        pl.col("version").alias("dam_version"),
        "role",
    )
    return target, desired
