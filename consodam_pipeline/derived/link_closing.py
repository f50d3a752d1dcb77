"""Links whose DAM version was deleted: the link history is rebuilt from the DAM's approval records, so a
version that is gone from the DAM leaves no event behind, and the ledger would go on answering that it is
live. This closes each such link with a `link_superseded` event (reason `version_deleted`) at the moment the
inventory no longer held it. The event's id derives from the link it closes: a replay adds nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

import polars as pl
import sqlalchemy as sa

from consodam_pipeline.domain.links import LINK_EVENTS, live_links
from consodam_pipeline.store.ledger import AuditEvent, Ledger


def closing_events(
    conn: sa.Connection,
    isbns: Collection[str],
    links: pl.DataFrame,
    inventory: pl.Series,
    linked: pl.Series,
    at: datetime,
    run_id: str | None,
) -> list[AuditEvent]:
    """For these editions, a link_superseded event for each link still live in the ledger whose version the
    inventory no longer holds, and a link_created event for the link that replaces it now (`links`: the
    links computed from today's inventory), if any. `linked`: every asset id the ledger links to these
    editions (what `Ledger.linked_assets` found, and what this run appended). Both id lists stay columns:
    as Python sets, the 1.78M version ids of a 100k-works backlist alone take ~200 MB."""
    if linked.is_empty():
        return []
    gone = set(linked.filter(~linked.is_in(inventory.implode())).unique().to_list())
    if not gone:
        return []
    affected = sorted(Ledger.editions_linking(conn, gone) & set(isbns))
    now_linked = links.filter(pl.col("isbn13").is_in(pl.Series(affected, dtype=pl.String).implode()))
    current = {(r["isbn13"], r["role"]): r for r in now_linked.iter_rows(named=True)}
    events = []
    for isbn, history in Ledger.events_of(conn, affected, LINK_EVENTS).items():
        for role, link in live_links(history).items():
            if link["dam_asset_id"] in gone:
                events.append(_closing(isbn, role, link, at, run_id))
                if (isbn, role) in current:
                    events.append(_relinking(isbn, role, current[(isbn, role)], link, at, run_id))
    return events


def _relinking(
    isbn: str, role: str, row: Mapping[str, Any], closed: Mapping[str, Any], at: datetime, run_id: str | None
) -> AuditEvent:
    keep = ("approved_at", "approved_by", "asset_id", "original_asset_id", "scope", "version")
    return AuditEvent(
        event_type="link_created",
        occurred_at=at,
        isbn13=isbn,
        work_id=closed["work_id"],
        dam_asset_id=row["asset_id"],
        dam_version=row["version"],
        role=role,
        actor=row["approved_by"],
        after={**{k: row[k] for k in keep}, "reason": "previous_version_deleted"},
        run_id=run_id,
        identity=f"{isbn}|{role}|{row['asset_id']}|{row['version']}|after|{closed['dam_asset_id']}|deleted",
    )


def _closing(isbn: str, role: str, link: Mapping[str, Any], at: datetime, run_id: str | None) -> AuditEvent:
    return AuditEvent(
        event_type="link_superseded",
        occurred_at=at,
        isbn13=isbn,
        work_id=link["work_id"],
        dam_asset_id=link["dam_asset_id"],
        dam_version=link["dam_version"],
        role=role,
        actor="consodam",
        after={"reason": "version_deleted"},
        run_id=run_id,
        identity=f"{isbn}|{role}|{link['dam_asset_id']}|{link['dam_version']}|{link['occurred_at']}|deleted",
    )
