"""From the DAM inventory and the editions to approval events, link timelines and current links."""

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from consodam_pipeline.domain.links import Approval, timeline
from consodam_pipeline.domain.roles import AssetRole
from consodam_pipeline.domain.timestamps import parse_ts
from consodam_pipeline.store.lineage import AuditEvent

LINK_COLUMNS = {
    "product_id": pl.Int64, "isbn13": pl.String, "work_id": pl.Int64, "role": pl.String,
    "resource_content_type": pl.String, "asset_id": pl.String, "original_asset_id": pl.String,
    "version": pl.Int64, "approved_by": pl.String, "approved_at": pl.String, "scope": pl.String,
    "linked_since": pl.String,
}  # fmt: skip


def approval_entries(versions: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One row per approval in the DAM's history, with the time a later rejection revoked it (if any)."""
    history = (
        versions.filter(~pl.col("orphan_tag"))
        .select("asset_id", "original_asset_id", "version", "role", "isbn13", "work_id", "approval_history")
        .explode("approval_history")
        .drop_nulls("approval_history")
        .unnest("approval_history")
    )
    approved = history.filter(pl.col("status") == "approved")
    rejected = history.filter(pl.col("status") == "rejected").select(
        "asset_id", pl.col("at").alias("rejected_at")
    )
    revocations = (
        approved.select("asset_id", "at")
        .join(rejected, on="asset_id")
        .filter(pl.col("rejected_at") > pl.col("at"))
        .group_by("asset_id", "at")
        .agg(pl.col("rejected_at").min().alias("revoked_at"))
    )
    return approved.join(revocations, on=["asset_id", "at"], how="left"), history


def candidates(editions: pl.DataFrame, approvals: pl.DataFrame) -> pl.DataFrame:
    """Approvals attached to each edition: its own ISBN's assets and its work's shared ones."""
    base = editions.select("product_id", "isbn13", "work_id")
    specific = approvals.filter(pl.col("isbn13").is_not_null()).drop("work_id").join(base, on="isbn13")
    shared = approvals.filter(pl.col("isbn13").is_null()).drop("isbn13").join(base, on="work_id")
    return pl.concat(
        [specific.with_columns(pl.lit(True).alias("edition_specific")),
         shared.with_columns(pl.lit(False).alias("edition_specific"))],
        how="diagonal_relaxed",
    )  # fmt: skip


@dataclass
class LinkHistory:
    current: list[dict[str, Any]] = field(default_factory=list)
    events: list[AuditEvent] = field(default_factory=list)


def _link_payload(approval: Approval) -> dict[str, Any]:
    return {"asset_id": approval.asset_id, "original_asset_id": approval.original_asset_id,
            "version": approval.version, "approved_by": approval.approved_by, "approved_at": approval.approved_at,
            "scope": "edition" if approval.edition_specific else "work"}  # fmt: skip


def link_history(editions: pl.DataFrame, versions: pl.DataFrame, run_id: str | None) -> LinkHistory:
    """Current links and every event of the past, all at once (small catalogs and tests)."""
    merged = LinkHistory()
    for part in link_history_chunks(editions, versions, run_id):
        merged.current += part.current
        merged.events += part.events
    return merged


def link_history_chunks(
    editions: pl.DataFrame, versions: pl.DataFrame, run_id: str | None, editions_per_chunk: int = 10_000
) -> Iterator[LinkHistory]:
    """The same, a slice of editions at a time, so a backfill of the whole backlist holds one slice of
    events in memory, not millions."""
    approvals, history = approval_entries(versions)
    ids = editions["product_id"].unique().sort()
    for start in range(0, len(ids), editions_per_chunk):
        subset = editions.filter(pl.col("product_id").is_in(ids.slice(start, editions_per_chunk).implode()))
        yield _history_for(subset, approvals, history, run_id)


def _history_for(
    editions: pl.DataFrame, approvals: pl.DataFrame, history: pl.DataFrame, run_id: str | None
) -> LinkHistory:
    result = LinkHistory()
    attached = candidates(editions, approvals).sort("product_id", "role", "at")
    rows = attached.iter_rows(named=True)
    for (product_id, role), group in itertools.groupby(rows, key=lambda r: (r["product_id"], r["role"])):
        members = list(group)
        edition = members[0]
        items = [
            Approval(r["asset_id"], r["original_asset_id"], r["version"], r["at"], r["by"], r["edition_specific"],
                     r["revoked_at"]) for r in members
        ]  # fmt: skip
        changes = timeline(items)
        previous: Approval | None = None
        for moment, chosen in changes:
            when = parse_ts(moment)
            if previous is not None:
                result.events.append(
                    _event("link_superseded", when, edition, str(role), previous, None, run_id)
                )
            if chosen is not None:
                result.events.append(
                    _event("link_created", when, edition, str(role), chosen, previous, run_id)
                )
            previous = chosen
        if changes and changes[-1][1] is not None:
            since, chosen = changes[-1]
            assert chosen is not None
            result.current.append({
                "product_id": product_id, "isbn13": edition["isbn13"], "work_id": edition["work_id"], "role": role,
                "resource_content_type": AssetRole(str(role)).content_type.value, **_link_payload(chosen),
                "linked_since": since,
            })  # fmt: skip
    result.events += approval_events(editions, history, run_id)
    return result


def _event(kind: str, when: datetime, edition: dict[str, Any], role: str, link: Approval,
           before: Approval | None, run_id: str | None) -> AuditEvent:  # fmt: skip
    return AuditEvent(
        event_type=kind, occurred_at=when, isbn13=edition["isbn13"], work_id=str(edition["work_id"]),
        dam_asset_id=link.asset_id, dam_version=link.version, role=role, actor=link.approved_by,
        before=None if before is None else _link_payload(before), after=_link_payload(link), run_id=run_id,
    )  # fmt: skip


def approval_events(editions: pl.DataFrame, history: pl.DataFrame, run_id: str | None) -> list[AuditEvent]:
    """Every approval decision of the DAM, once per edition it concerns (so an ISBN's audit shows it)."""
    decisions = history.filter(pl.col("status").is_in(["approved", "rejected", "in_review"]))
    attached = candidates(editions, decisions)
    return [
        AuditEvent(
            event_type=f"version_{r['status']}",
            occurred_at=parse_ts(r["at"]),
            isbn13=r["isbn13"],
            work_id=str(r["work_id"]),
            dam_asset_id=r["asset_id"],
            dam_version=r["version"],
            role=r["role"],
            actor=r["by"],
            after={"status": r["status"], "by": r["by"]},
            run_id=run_id,
        )
        for r in attached.iter_rows(named=True)
    ]


def current_links_frame(history: LinkHistory) -> pl.DataFrame:
    return pl.DataFrame(history.current, schema=LINK_COLUMNS)
