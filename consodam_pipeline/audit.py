"""Audit questions for one edition, answered from the ledger: what was approved when, what was live on a
date, who approved it, which runs wrote it. Used by `consodam audit` and importable from Python."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from consodam_pipeline.domain.isbn import normalize_isbn
from consodam_pipeline.store.lineage import LineageStore

LINK_EVENTS = ("link_superseded", "link_created")


@dataclass
class LiveLink:
    role: str
    asset_id: str
    version: int
    approved_by: str | None
    approved_at: str | None
    linked_since: str
    written_by_runs: list[str] = field(default_factory=list)


@dataclass
class EditionAudit:
    isbn13: str
    as_of: str
    live: list[LiveLink]
    history: list[dict[str, Any]]
    package: dict[str, Any] | None = None  # the package state recorded last before `as_of`
    stage: str | None = None  # the project stage consodam last saw or moved the title to
    stage_advances: list[dict[str, Any]] = field(default_factory=list)
    review_tasks: list[dict[str, Any]] = field(default_factory=list)
    usage: list[dict[str, Any]] = field(default_factory=list)  # each download or delivery of its versions

    def as_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)


_SAME_MOMENT_ORDER = {"link_superseded": 1, "link_created": 2}


def _order(event: dict[str, Any]) -> tuple[Any, int]:
    # At one moment: the approval decision, then the old link closes, then the new one opens, then writes.
    kind = event["event_type"]
    return event["occurred_at"], 0 if kind.startswith("version_") else _SAME_MOMENT_ORDER.get(kind, 3)


def live_links(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """role → the link_created event still live after these (time-ordered) events."""
    live: dict[str, dict[str, Any]] = {}
    for event in sorted((e for e in events if e["event_type"] in LINK_EVENTS), key=_order):
        role = event["role"]
        if event["event_type"] == "link_created":
            live[role] = event
        elif role in live and live[role]["dam_asset_id"] == event["dam_asset_id"]:
            del live[role]
    return live


def edition_audit(store: LineageStore, isbn: str, as_of: datetime | None = None) -> EditionAudit:
    isbn13 = normalize_isbn(isbn)
    moment = as_of or datetime.now(UTC)
    events = store.events_for_isbn(isbn13, until=moment)
    writes: dict[tuple[str, str, int], list[str]] = {}
    for event in events:
        if event["event_type"] == "link_written" and event["run_id"]:
            key = (event["role"], event["dam_asset_id"], event["dam_version"])
            writes.setdefault(key, []).append(event["run_id"])
    live = []
    for role, event in sorted(live_links(events).items()):
        after = json.loads(event["after_json"] or "{}")
        live.append(
            LiveLink(
                role=role,
                asset_id=event["dam_asset_id"],
                version=event["dam_version"],
                approved_by=after.get("approved_by"),
                approved_at=after.get("approved_at"),
                linked_since=str(event["occurred_at"]),
                written_by_runs=sorted(
                    set(writes.get((role, event["dam_asset_id"], event["dam_version"]), []))
                ),
            )
        )
    history = [
        {
            k: event[k]
            for k in ("occurred_at", "event_type", "role", "dam_asset_id", "dam_version", "actor", "run_id")
        }
        for event in sorted(events, key=_order)
    ]
    package = store.as_of(PACKAGE_ENTITY, isbn13, moment)
    advances = [
        _after(e) | {"at": str(e["occurred_at"])} for e in events if e["event_type"] == "stage_advanced"
    ]
    stage = advances[-1]["to"] if advances else (package or {}).get("stage")
    work = next((e["work_id"] for e in events if e["work_id"]), None)
    usage = [
        {k: str(u[k]) if k == "used_at" else u[k] for k in USAGE_FIELDS}
        for u in store.usage(isbn13, work, until=moment)
    ]
    return EditionAudit(
        isbn13, moment.isoformat(), live, history, package, stage, advances, review_tasks(events), usage
    )


USAGE_FIELDS = ("used_at", "asset_id", "dam_version", "role", "used_by", "channel", "action")


PACKAGE_ENTITY = "title_package"
TASK_EVENTS = ("review_task_opened", "review_task_completed", "review_task_closed")


def _after(event: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(event["after_json"] or "{}"))


def review_tasks(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each review task consodam opened for the edition, and where it stood at the end of these events."""
    tasks: dict[str, dict[str, Any]] = {}
    for event in (e for e in events if e["event_type"] in TASK_EVENTS):
        after = _after(event)
        state = after.get("state") or {}
        key = str(
            after.get("task_id") or after.get("handle") or state.get("asset_id") or state.get("requirement")
        )
        task = tasks.setdefault(key, {"opened": None, "status": "open", "by": None})
        if event["event_type"] == "review_task_opened":
            task.update(opened=str(event["occurred_at"]), task_id=after.get("handle"), **state)
        elif event["event_type"] == "review_task_completed":
            task.update(status=after.get("decision"), by=event["actor"], at=str(event["occurred_at"]))
        else:
            task.update(status="cancelled", reason=after.get("reason"), at=str(event["occurred_at"]))
    return list(tasks.values())


def render(audit: EditionAudit) -> str:
    lines = [f"ISBN {audit.isbn13} — live as of {audit.as_of}", ""]
    lines.append(f"{'role':22} {'asset version':48} {'approved by':34} {'approved at':26} written by runs")
    for link in audit.live:
        lines.append(
            f"{link.role:22} {link.asset_id + ' v' + str(link.version):48} {link.approved_by or '':34} "
            f"{link.approved_at or '':26} {', '.join(r[:8] for r in link.written_by_runs) or '—'}"
        )
    if audit.package:
        lines += [
            "",
            f"package ({audit.package.get('stage')}; milestone {audit.package.get('milestone') or '—'})",
        ]
        for req in audit.package.get("requirements", []):
            version = f"{(req['asset_id'] or '')[:12]} v{req['version']}" if req.get("asset_id") else "—"
            lines.append(
                f"  {req['requirement']:14} {req['status']:16} {version:18} {req.get('detail') or ''}"
            )
    for advance in audit.stage_advances:
        met = ", ".join(
            f"{r} {(v['asset_id'] or '')[:12]} v{v['version']} ({v['approved_by']})"
            for r, v in advance.get("met_by", {}).items()
        )
        lines.append(f"stage advanced {advance['at']}: {advance['from']} → {advance['to']}; met by {met}")
    for task in audit.review_tasks:
        subject = task.get("asset_id") or task.get("requirement")
        lines.append(
            f"review task {task.get('kind', 'review')} {subject} ({task.get('milestone')}): {task['status']}"
            + (f" by {task['by']}" if task.get("by") else "")
        )
    if audit.usage:
        lines += ["", f"used ({len(audit.usage)} times)"]
        lines += [
            f"  {u['used_at']:26} {u['role'] or '':20} {(u['asset_id'] or '')[:12]} v{u['dam_version']}  "
            f"{u['action']} via {u['channel']} by {u['used_by']}"
            for u in audit.usage
        ]
    lines += ["", f"history ({len(audit.history)} events)", ""]
    for event in audit.history:
        lines.append(
            f"{event['occurred_at']!s:26} {event['event_type']:20} {event['role'] or '':20} "
            f"{(event['dam_asset_id'] or '')[:12]} v{event['dam_version']}  {event['actor'] or ''}"
        )
    return "\n".join(lines)
