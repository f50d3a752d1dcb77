"""Every kind of audit ledger event consodam writes: the system the change it records lives in, and what each
row of it names besides its edition (every row names its edition's work, and its ISBN unless it is about a
work-wide asset shared by the work's editions).

- `system`: "dam" and "consonance" are writes into (or decisions taken in) those systems; "consodam" are
  decisions consodam itself recorded (a link superseded, a stage held); "target" is the system of the write
  target the event comes from (a duplicate removed, a hand edit overwritten).
- `names`: "version" — the DAM asset, its version number and its role; "asset" — the asset and its role (its
  version where it is still known: a link removed because its version was deleted); "role" — the role or
  requirement; "edition" — nothing more; "slot" — whatever its write slot names.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EventKind:
    system: str
    names: str
    reachable: bool = (
        True  # False: declared by a target for completeness, never written (fields are not deleted)
    )


EVENT_KINDS: dict[str, EventKind] = {
    "version_approved": EventKind("dam", "version"),
    "version_rejected": EventKind("dam", "version"),
    "version_in_review": EventKind("dam", "version"),
    "link_created": EventKind("consodam", "version"),
    "link_superseded": EventKind("consodam", "version"),
    "link_written": EventKind("consonance", "version"),
    "link_removed": EventKind("consonance", "asset"),
    "restriction_applied": EventKind("dam", "version"),
    "dam_fields_cleared": EventKind("dam", "asset"),
    "tags_written": EventKind("dam", "version"),
    "stage_held": EventKind("consodam", "edition"),
    "stage_advanced": EventKind("consonance", "edition"),
    "stage_written": EventKind("consonance", "edition"),
    "stage_unset": EventKind("consonance", "edition", reachable=False),
    "package_incomplete_after_advance": EventKind("consodam", "edition"),
    "review_task_opened": EventKind("dam", "role"),
    "review_task_completed": EventKind("dam", "role"),
    "review_task_closed": EventKind("dam", "role"),
    "package_referenced": EventKind("consonance", "version"),
    "package_reference_removed": EventKind("consonance", "role"),
    "title_sheet_published": EventKind("dam", "asset"),
    "title_sheet_withdrawn": EventKind("dam", "asset", reachable=False),
    "published_to_collection": EventKind("dam", "asset"),
    "removed_from_collection": EventKind("dam", "asset"),
    "launch_package_incomplete": EventKind("consodam", "edition"),
    "duplicate_removed": EventKind("target", "slot"),
    "manual_change_overwritten": EventKind("target", "slot"),
}
# Not a ledger event: each use of an approved version, from the DAM's usage log, as the report shows it.
ASSET_USED = "asset_used"


def system_of(event_type: str) -> str:
    """The system a change of this kind lives in ("consodam" for its own decisions)."""
    if event_type == ASSET_USED:
        return "dam"
    kind = EVENT_KINDS.get(event_type)
    return "consodam" if kind is None or kind.system == "target" else kind.system


def missing_names(row: dict[str, object]) -> list[str]:
    """What a ledger row fails to name that its kind requires (empty when it names everything)."""
    kind = EVENT_KINDS.get(str(row["event_type"]))
    if kind is None:
        return ["a known event type"]
    missing = [] if row.get("work_id") else ["work_id"]
    if not row.get("isbn13") and not (row.get("dam_asset_id") and row.get("work_id")):
        missing.append("isbn13")  # only an event about a work-wide asset may name its work alone
    required = {
        "version": ("dam_asset_id", "dam_version", "role"),
        "asset": ("dam_asset_id", "role"),
        "role": ("role",),
    }.get(kind.names, ())
    return missing + [name for name in required if row.get(name) in (None, "")]
