"""The audit answer as a reviewer reads it: one line per fact, names instead of ids (the version's role and
number, the policy's name, the territory as ONIX says it), aligned columns whatever the event name. The JSON
answer keeps every id and timestamp to the microsecond; the text reads to the second."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from consodam_pipeline.audit.answer import EditionAudit
from consodam_pipeline.domain.onix import CodeList, ProductForm, PublishingStatus
from consodam_pipeline.domain.policies import SECURITY_POLICIES

RIGHTS = "CONSODAM.RIGHTS."
TAG = "CONSODAM.TAG."


def when(stamp: str | None) -> str:
    """A timestamp to the second."""
    return (stamp.split(".")[0] + "Z" if "." in stamp else stamp) if stamp else ""


def short_id(asset_id: str | None) -> str:
    return (asset_id or "")[:12]


class Names:
    """What a reviewer calls an asset version: `front_cover v3`, with its short id."""

    def __init__(self, audit: EditionAudit) -> None:
        self.versions = {v["asset_id"]: v for v in audit.dam_versions}
        self.versions |= {v["asset_id"]: {"role": v["role"], "version": v["version"]} for v in _links(audit)}

    def version(self, asset_id: str | None, version: int | None = None, role: str | None = None) -> str:
        if not asset_id:
            return ""
        known = self.versions.get(asset_id, {})
        role, version = role or known.get("role"), version if version is not None else known.get("version")
        named = " ".join(p for p in (role, f"v{version}" if version is not None else None) if p)
        return f"{named} ({short_id(asset_id)})" if named else short_id(asset_id)


def _links(audit: EditionAudit) -> list[dict[str, Any]]:
    return [{"asset_id": link.asset_id, "role": link.role, "version": link.version} for link in audit.live]


def table(rows: Sequence[Sequence[str]], indent: str = "  ") -> list[str]:
    """Rows as aligned columns, each as wide as its widest cell."""
    if not rows:
        return []
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    return [
        indent + "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]


def described(code_list: type[CodeList], code: object) -> str:
    try:
        return f"{code} {code_list.parse(code).description}"
    except ValueError:
        return str(code or "—")


def render(audit: EditionAudit) -> str:
    if not audit.known:
        return f"ISBN {audit.isbn13}: the lineage store has no record of it"
    names = Names(audit)
    sections = [
        [f"ISBN {audit.isbn13} — as of {when(audit.as_of)}"],
        _title(audit),
        _quarantine(audit),
        _links_section(audit, names),
        _written(audit, names),
        _workflow(audit, names),
        _usage(audit, names),
        _history(audit, names),
    ]
    return "\n".join(line for section in sections if section for line in [*section, ""]).rstrip() + "\n"


def _title(audit: EditionAudit) -> list[str]:
    title, rights = audit.title, audit.sales_rights or {}
    if title is None:
        return ["title record: none recorded at this moment"]
    stage = audit.stage or "—"
    shown = title.get("project_stage")
    if audit.stage_source == "consodam" and shown != audit.stage:
        stage += f" (written by consodam {when(audit.stage_since)}; Consonance last showed {shown or '—'})"
    rows = [
        ("title", f"{title['title']} — {title['imprint'] or 'no imprint'}"),
        ("form", described(ProductForm, title["product_form"])),
        ("status", described(PublishingStatus, title["publishing_status"])),
        ("published", title["publication_date"] or "—"),
        ("stage", stage),
        ("rights", rights.get("sales_rights") or "—"),
        ("record since", when(title.get("recorded_since"))),
    ]
    return table(rows, indent="")


def _quarantine(audit: EditionAudit) -> list[str]:
    if not audit.quarantine:
        return []
    rows = [(q["source"], q["reason"], f"since {when(q['since'])}") for q in audit.quarantine]
    return ["held in quarantine (refused, with the reason)", *table(rows)]


def _links_section(audit: EditionAudit, names: Names) -> list[str]:
    if not audit.live:
        return ["linked versions: none"]
    rows = [("role", "version", "approved by", "approved at", "linked since", "written by runs")]
    rows += [
        (
            link.role,
            f"v{link.version} ({short_id(link.asset_id)})",
            link.approved_by or "",
            when(link.approved_at),
            when(link.linked_since),
            ", ".join(r[:8] for r in link.written_by_runs) or "—",
        )
        for link in audit.live
    ]
    return ["linked versions", *table(rows)]


def restriction(state: dict[str, Any]) -> str:
    fields, policies = state.get("fields") or {}, state.get("policies") or []
    policy = ", ".join(SECURITY_POLICIES.get(p, str(p)) for p in policies) or "—"
    if not fields:
        return f"{policy}: granted nowhere"
    window = " ".join(
        part
        for part in (
            f"from {fields.get(RIGHTS + 'VISIBLE_FROM')}" if fields.get(RIGHTS + "VISIBLE_FROM") else "",
            f"until {fields.get(RIGHTS + 'VISIBLE_UNTIL')}" if fields.get(RIGHTS + "VISIBLE_UNTIL") else "",
        )
        if part
    )
    seen = "seen and downloaded" if fields.get(RIGHTS + "DOWNLOADABLE") == "true" else "seen, not downloaded"
    where = str(fields.get(RIGHTS + "COUNTRIES", "")).replace(" excl. ", " excluding ")
    return f"{policy}: {seen} in {where}" + (f" {window}" if window else "")


def _state(facet: str, row: dict[str, Any], names: Names) -> tuple[str, str]:
    """(what, its state) of one written slot, in words."""
    state = row["state"] or {}
    if facet == "restrictions":
        return names.version(row["key"]), restriction(state)
    if facet == "tags":
        fields = state.get("fields") or {}
        return names.version(row["key"]), "; ".join(
            f"{k.removeprefix(TAG).lower()} {v}" for k, v in fields.items()
        )
    if facet in ("consonance_resources", "production_files"):
        asset = str(state.get("url", "")).rsplit("/", 2)[-2] if state.get("url") else None
        slot = row["key"].split("|", 1)[-1]
        return slot, f"{state.get('caption')} → {names.version(asset)} (Consonance id {row['handle']})"
    if facet == "stage_written":
        return "stage", str(state.get("stage"))
    if facet == "collections":
        return str(state.get("collection")), names.version(state.get("asset_id"))
    return row["key"], json.dumps(state, sort_keys=True)


def _written(audit: EditionAudit, names: Names) -> list[str]:
    lines = []
    for facet, rows in audit.written.items():
        if rows:
            lines.append(f"{facet.replace('_', ' ')} (as consodam had written them)")
            lines += table([(*_state(facet, r, names), f"since {when(r['since'])}") for r in rows])
    if audit.title_sheet:
        sheet = audit.title_sheet
        sha = str((sheet["state"] or {}).get("sha"))[:12]
        lines.append(
            f"title sheet: {names.version(sheet['handle'])} (sha {sha}) since {when(sheet['since'])}"
        )
    return lines


def _workflow(audit: EditionAudit, names: Names) -> list[str]:
    lines = []
    if audit.package:
        lines.append(
            f"package (as evaluated; the title's stage was then {audit.package.get('stage') or '—'})"
        )
        lines += table(
            [
                (
                    r["requirement"],
                    r["status"],
                    names.version(r.get("asset_id"), r.get("version")),
                    r.get("detail") or "",
                )
                for r in audit.package.get("requirements", [])
            ]
        )
    for advance in audit.stage_advances:
        met = ", ".join(
            f"{names.version(v['asset_id'], v['version'], role)} approved by {v['approved_by']}"
            for role, v in advance.get("met_by", {}).items()
        )
        lines.append(
            f"stage advanced {when(advance['at'])}: {advance['from']} → {advance['to']}; met by {met}"
        )
    if audit.review_tasks:
        lines.append("review tasks")
        lines += table([_task(t, names) for t in audit.review_tasks])
    return lines


def _task(task: dict[str, Any], names: Names) -> tuple[str, ...]:
    subject = names.version(task.get("asset_id")) if task.get("asset_id") else str(task.get("requirement"))
    status = str(task["status"])
    if task.get("by"):
        status += f" by {task['by']}"
    if task.get("decided"):
        status += f" ({task['decided']})"
    if task.get("reason"):
        status += f": {task['reason']}"
    earlier = "; ".join(f"{e.get('status')} {when(e.get('at'))}" for e in task.get("earlier", []))
    return (
        task.get("kind", "review"),
        subject,
        f"({task.get('milestone')})",
        status,
        when(task.get("at") or task.get("opened")),
        f"earlier: {earlier}" if earlier else "",
    )


def _usage(audit: EditionAudit, names: Names) -> list[str]:
    if not audit.usage:
        return []
    rows = [
        (
            when(u["used_at"]),
            names.version(u["asset_id"], u["dam_version"], u["role"]),
            f"{u['action']} via {u['channel']}",
            f"by {u['used_by']}",
        )
        for u in audit.usage
    ]
    return [f"used ({len(audit.usage)} times)", *table(rows)]


def detail(event: dict[str, Any]) -> str:
    """What a ledger event says beyond its type, in a few words."""
    after = event.get("after") or {}
    kind = event["event_type"]
    if kind == "stage_held":
        lacks = ", ".join(after.get("missing") or []) or "moved back by hand"
        return f"at {after.get('milestone') or after.get('stage')}, lacks {lacks}"
    if kind == "stage_advanced":
        return f"{after.get('from')} → {after.get('to')}"
    if kind == "stage_written":
        return f"stage {(after.get('state') or {}).get('stage')}"
    if kind == "review_task_completed":
        return f"{after.get('decision')}"
    if kind == "launch_package_incomplete":
        return f"{after.get('collection')}, lacks {', '.join(after.get('missing') or [])}"
    if "reason" in after:
        return str(after["reason"])
    return ""


def _history(audit: EditionAudit, names: Names) -> list[str]:
    rows: list[Iterable[str]] = [("when", "event", "version", "by", "detail")]
    rows += [
        (
            when(e["occurred_at"]),
            e["event_type"],
            names.version(e["dam_asset_id"], e["dam_version"], e["role"]) or (e["role"] or ""),
            e["actor"] or "",
            detail(e),
        )
        for e in audit.history
    ]
    return [f"history ({len(audit.history)} events)", *table([tuple(r) for r in rows])]
