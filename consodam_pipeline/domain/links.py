"""Which approved asset version is linked to an edition for a role: the rules, in one place.

For an edition and a role (front cover, contributor picture, jacket copy, …):
1. Candidates are the assets of that role tagged with the edition's ISBN (edition-specific) and those
   tagged only with the edition's work (work-wide). Edition-specific candidates win over work-wide ones:
   a special edition's own cover beats the work's generic one.
2. Of each candidate asset, only its newest approved version counts (an older approved version was
   superseded when the newer one was approved). The same version approved twice at one moment (a
   duplicated record) counts once, the one with the later approver name and revocation.
3. Of several candidate assets, the one approved most recently wins; equal times fall to the larger
   asset id, so the choice never depends on row order.
4. A link exists from the moment its version was approved. As of any past date the live link is the one
   these rules pick from the approvals made up to that date, which is how the backlist's history is
   rebuilt from the DAM's approval history.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

LINK_EVENTS = ("link_superseded", "link_created")
# At one moment: the approval decision, then the old link closes, then the new one opens, then writes.
SAME_MOMENT_ORDER = {"link_superseded": 1, "link_created": 2}


@dataclass(frozen=True)
class Approval:
    """An approval of one version of one asset, as the DAM's history records it."""

    asset_id: str
    original_asset_id: str
    version: int
    approved_at: str  # ISO 8601 UTC
    approved_by: str | None
    edition_specific: bool
    revoked_at: str | None = None  # a later rejection of the same version ends its approval


def pick(approvals: Iterable[Approval], as_of: str | None = None) -> Approval | None:
    """The linked version among the approvals of one (edition, role), as of a time (None: now)."""
    live = [
        a
        for a in approvals
        if (as_of is None or a.approved_at <= as_of)
        and (a.revoked_at is None or (as_of is not None and a.revoked_at > as_of))
    ]
    if not live:
        return None
    newest: dict[str, Approval] = {}
    for approval in live:
        current = newest.get(approval.original_asset_id)
        if current is None or _recency(approval) > _recency(current):
            newest[approval.original_asset_id] = approval
    best_scope = max(a.edition_specific for a in newest.values())
    scoped = [a for a in newest.values() if a.edition_specific == best_scope]
    return max(scoped, key=lambda a: (a.approved_at, a.original_asset_id))


def _recency(approval: Approval) -> tuple[int, str, str, str]:
    return approval.version, approval.approved_at, approval.approved_by or "", approval.revoked_at or ""


def timeline(approvals: Iterable[Approval]) -> list[tuple[str, Approval | None]]:
    """(from, linked approval or None when nothing is approved any more) each time the link changes."""
    ordered = sorted(approvals, key=lambda a: a.approved_at)
    moments = sorted({a.approved_at for a in ordered} | {a.revoked_at for a in ordered if a.revoked_at})
    changes: list[tuple[str, Approval | None]] = []
    for moment in moments:
        chosen = pick(ordered, moment)
        if (not changes and chosen is not None) or (changes and changes[-1][1] != chosen):
            changes.append((moment, chosen))
    return changes


def event_order(event: Mapping[str, Any]) -> tuple[Any, int]:
    """Ledger events in the order they happened; at one moment in the order of SAME_MOMENT_ORDER."""
    kind = event["event_type"]
    return event["occurred_at"], 0 if kind.startswith("version_") else SAME_MOMENT_ORDER.get(kind, 3)


def live_links(events: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """role → the link_created event still live after these (ledger) events."""
    live: dict[str, Mapping[str, Any]] = {}
    for event in sorted((e for e in events if e["event_type"] in LINK_EVENTS), key=event_order):
        role = event["role"]
        if event["event_type"] == "link_created":
            live[role] = event
        elif role in live and live[role]["dam_asset_id"] == event["dam_asset_id"]:
            del live[role]
    return live
