"""Everything about one edition at any moment, from the lineage store: its title record and sales rights, the
DAM versions of it, the links, restrictions, tags, production files, stage, review tasks, launch collections
and title sheet consodam had written, and when each approved version was used. Used by `consodam audit` and
importable from Python.

Reads need neither Dagster nor polars (the command answers in well under a second): SQLAlchemy Core over the
store's tables, a handful of indexed queries per answer. Every timestamp is RFC 3339 in UTC.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

import sqlalchemy as sa

from consodam_pipeline.domain.isbn import normalize_isbn
from consodam_pipeline.domain.links import event_order, live_links
from consodam_pipeline.store.schema import (
    asset_usage,
    audit_ledger,
    quarantine,
    record_history,
    record_subject,
)

SCHEMA = "consodam.audit/1"
TASK_EVENTS = ("review_task_opened", "review_task_completed", "review_task_closed")
EDITION = "edition"
DAM_VERSION = "dam_asset_version"
PACKAGE_ENTITY = "title_package"
SHEET_ENTITY = "dam_title_sheet"
KEYED_BY_ISBN = (PACKAGE_ENTITY, SHEET_ENTITY)
# What consodam wrote, by the facet of the answer it belongs to.
WRITTEN = {
    "dam_restriction": "restrictions",
    "dam_title_tags": "tags",
    "consonance_link": "consonance_resources",
    "consonance_production_file": "production_files",
    "title_stage": "stage_written",
    "dam_collection_member": "collections",
}
TITLE_FIELDS = (
    "product_id",
    "work_id",
    "title",
    "subtitle",
    "contributors",
    "imprint",
    "product_form",
    "format_family",
    "publishing_status",
    "publication_date",
    "embargo_date",
    "project_stage",
)
RIGHTS_FIELDS = (
    "for_sale_worldwide",
    "for_sale_countries",
    "not_for_sale_countries",
    "row_sales_rights_type",
    "sales_rights",
)
VERSION_FIELDS = ("asset_id", "original_asset_id", "version", "role", "approval_status", "approved_by")
USAGE_FIELDS = ("used_at", "asset_id", "dam_version", "role", "used_by", "channel", "action")
QUARANTINE_FIELDS = ("source", "record_key", "reason", "first_seen_at", "last_seen_at")
EDITION_SOURCES = ("consonance", "workflow")  # quarantine sources keyed by the edition's product id
STAGE_ENTITY = "title_stage"


def rfc3339(value: object) -> str | None:
    """Any moment the store or a system gives (a naive UTC datetime, an ISO string with Z or an offset)
    as RFC 3339 in UTC: `2026-04-16T18:26:05Z`, with microseconds only where there are some."""
    if value is None or value == "":
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace(" ", "T"))
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds").replace(
        "+00:00", "Z"
    )


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
    known: bool = True
    title: dict[str, Any] | None = None  # the title record Consonance showed at `as_of`
    sales_rights: dict[str, Any] | None = None
    dam_versions: list[dict[str, Any]] = field(default_factory=list)  # the DAM's versions of it then
    written: dict[str, list[dict[str, Any]]] = field(
        default_factory=dict
    )  # facet → what consodam had written
    package: dict[str, Any] | None = None  # the package state recorded last before `as_of`
    stage: str | None = (
        None  # the project stage at `as_of`: the later of what Consonance showed and consodam wrote
    )
    stage_since: str | None = None
    stage_source: str | None = None  # "consonance" (its last record) or "consodam" (its own later write)
    stage_advances: list[dict[str, Any]] = field(default_factory=list)
    review_tasks: list[dict[str, Any]] = field(default_factory=list)
    title_sheet: dict[str, Any] | None = None
    usage: list[dict[str, Any]] = field(default_factory=list)  # each download or delivery of its versions
    quarantine: list[dict[str, Any]] = field(default_factory=list)  # what was refused about it then, and why
    schema: str = SCHEMA

    def as_json(self) -> str:
        return json.dumps(asdict(self), indent=2, default=str)


def _engine(source: Any) -> sa.Engine:
    """A LineageStore or an engine: the audit needs only the engine."""
    return source if isinstance(source, sa.Engine) else source.engine


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def edition_audit(source: Any, isbn: str, as_of: datetime | None = None) -> EditionAudit:
    """The whole answer for one edition at `as_of` (default now). `known` is False when the store has never
    heard of the ISBN."""
    isbn13 = normalize_isbn(isbn)
    moment = as_of or datetime.now(UTC)
    asked = {"isbn13": isbn13, "at": _naive(moment)}
    queries = _queries()
    with _engine(source).connect() as conn:
        seen: dict[tuple[str, str], dict[str, Any]] = {}
        for row in conn.execute(queries.records, asked).mappings():
            seen.setdefault((row["entity"], row["record_key"]), dict(row))
        records = sorted(seen.values(), key=lambda r: (r["entity"], r["record_key"]))
        events = [dict(r) for r in conn.execute(queries.events, asked).mappings()]
        usage = [
            {**r, "used_at": rfc3339(r["used_at"])} for r in conn.execute(queries.usage, asked).mappings()
        ]
        held = [
            {**r, "since": rfc3339(r["first_seen_at"]), "last_seen": rfc3339(r["last_seen_at"])}
            for r in conn.execute(queries.quarantine, asked).mappings()
        ]
        known = bool(events or records) or conn.execute(queries.heard_of, asked).first() is not None
    answer = _answer(isbn13, moment, known, records, events, usage)
    answer.quarantine = [
        {k: v for k, v in r.items() if k not in ("first_seen_at", "last_seen_at")} for r in held
    ]
    return answer


@dataclass(frozen=True)
class _Queries:
    # every record about the edition (or its work's own assets) current at `at`
    records: sa.CompoundSelect[Any]
    events: sa.Select[Any]  # its ledger events up to `at`, in order
    usage: sa.Select[Any] | sa.CompoundSelect[Any]  # each use of its versions up to `at`
    quarantine: sa.CompoundSelect[Any]  # what was held back about it at `at`
    heard_of: sa.Select[Any]  # whether the store ever recorded anything about it


@cache
def _queries() -> _Queries:
    """The answer's statements, built once with the ISBN and the moment as parameters: an answer makes one
    round trip per facet and spends no time composing SQL."""
    isbn13, at = sa.bindparam("isbn13", type_=sa.String()), sa.bindparam("at", type_=sa.DateTime())
    h, s, a, u, q = record_history, record_subject, audit_ledger, asset_usage, quarantine
    edition_subject = s.alias("edition_subject")
    works = sa.select(edition_subject.c.work_id).where(
        edition_subject.c.isbn13 == isbn13, edition_subject.c.work_id != ""
    )
    current = sa.and_(h.c.valid_from <= at, sa.or_(h.c.valid_to.is_(None), h.c.valid_to > at))
    columns = (h.c.entity, h.c.record_key, h.c.payload, h.c.valid_from, h.c.run_id)
    subject = h.join(s, sa.and_(s.c.entity == h.c.entity, s.c.record_key == h.c.record_key))
    # Indexed reads in a UNION, not one OR: each arm keeps its own index on PostgreSQL as on SQLite.
    records = sa.union_all(
        sa.select(*columns).select_from(subject).where(s.c.isbn13 == isbn13, current),
        sa.select(*columns).select_from(subject).where(s.c.isbn13 == "", s.c.work_id.in_(works), current),
        sa.select(*columns).where(h.c.entity.in_(KEYED_BY_ISBN), h.c.record_key == isbn13, current),
    )
    used = [u.c[f] for f in USAGE_FIELDS]
    # An event about a work-wide asset names the work alone: the edition's answer includes its works' own.
    events = sa.union_all(
        sa.select(a).where(a.c.isbn13 == isbn13, a.c.occurred_at <= at),
        sa.select(a).where(a.c.isbn13.is_(None), a.c.work_id.in_(works), a.c.occurred_at <= at),
    )
    held = sa.and_(q.c.first_seen_at <= at, sa.or_(q.c.resolved_at.is_(None), q.c.resolved_at > at))
    keys_of = {
        entity: sa.select(s.c.record_key).where(s.c.isbn13 == isbn13, s.c.entity == entity)
        for entity in (EDITION, DAM_VERSION)
    }
    quarantined = [q.c[f] for f in QUARANTINE_FIELDS]
    return _Queries(
        records=records,
        events=sa.select(events.subquery()).order_by("occurred_at", "event_id"),
        usage=sa.union_all(
            sa.select(*used).where(u.c.isbn13 == isbn13, u.c.used_at <= at),
            sa.select(*used).where(u.c.isbn13.is_(None), u.c.work_id.in_(works), u.c.used_at <= at),
        ).order_by("used_at"),
        quarantine=sa.union_all(
            sa.select(*quarantined).where(
                q.c.source.in_(EDITION_SOURCES), q.c.record_key.in_(keys_of[EDITION]), held
            ),
            sa.select(*quarantined).where(
                q.c.source == "dam", q.c.record_key.in_(keys_of[DAM_VERSION]), held
            ),
        ),
        heard_of=sa.select(s.c.entity).where(s.c.isbn13 == isbn13).limit(1),
    )


def _answer(
    isbn13: str,
    moment: datetime,
    known: bool,
    records: list[dict[str, Any]],
    events: list[dict[str, Any]],
    usage: list[dict[str, Any]],
) -> EditionAudit:
    by_entity: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        by_entity.setdefault(record["entity"], []).append(record)
    title, rights = _title(by_entity.get(EDITION, []), isbn13)
    package = next((json.loads(r["payload"]) for r in by_entity.get(PACKAGE_ENTITY, [])), None)
    advances = [
        _after(e) | {"at": rfc3339(e["occurred_at"])} for e in events if e["event_type"] == "stage_advanced"
    ]
    stage, stage_since, stage_source = _stage(title, by_entity.get(STAGE_ENTITY, []))
    if title is not None:
        title.pop("valid_from")
    return EditionAudit(
        isbn13=isbn13,
        as_of=rfc3339(moment) or "",
        live=_live(events),
        history=_history(events),
        known=known,
        title=title,
        sales_rights=rights,
        dam_versions=_versions(by_entity.get(DAM_VERSION, [])),
        written={facet: _written(by_entity.get(entity, [])) for entity, facet in WRITTEN.items()},
        package=package,
        stage=stage,
        stage_since=stage_since,
        stage_source=stage_source,
        stage_advances=advances,
        review_tasks=review_tasks(events),
        title_sheet=next((_written([r])[0] for r in by_entity.get(SHEET_ENTITY, [])), None),
        usage=usage,
    )


def _title(
    editions: list[dict[str, Any]], isbn13: str
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The edition record that carried this ISBN at the moment (a product whose ISBN was corrected has
    one for each), split into the title and its sales rights."""
    payloads = [(json.loads(r["payload"]), r) for r in editions]
    chosen = next(
        ((p, r) for p, r in payloads if p.get("isbn13") == isbn13), payloads[0] if payloads else None
    )
    if chosen is None:
        return None, None
    payload, row = chosen
    title = {k: payload.get(k) for k in TITLE_FIELDS} | {"recorded_since": rfc3339(row["valid_from"])}
    title["valid_from"] = row["valid_from"]
    return title, {k: payload.get(k) for k in RIGHTS_FIELDS}


def _stage(
    title: dict[str, Any] | None, written: list[dict[str, Any]]
) -> tuple[str | None, str | None, str | None]:
    """The stage the edition was at: what consodam wrote, when that is later than the record Consonance last
    showed (its own write is known from the moment it wrote it, not from the next read); else Consonance's."""
    shown_at = (title or {}).get("valid_from")
    latest = max(written, key=lambda r: r["valid_from"], default=None)
    if latest is not None and (shown_at is None or latest["valid_from"] > shown_at):
        return json.loads(latest["payload"])["state"]["stage"], rfc3339(latest["valid_from"]), "consodam"
    if title is None:
        return None, None, None
    return title.get("project_stage"), title.get("recorded_since"), "consonance"


def _versions(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    versions = []
    for row in rows:
        payload = json.loads(row["payload"])
        versions.append(
            {k: payload.get(k) for k in VERSION_FIELDS}
            | {"approved_at": rfc3339(payload.get("approved_at")), "since": rfc3339(row["valid_from"])}
        )
    return sorted(versions, key=lambda v: (str(v["role"]), str(v["original_asset_id"]), v["version"] or 0))


def _written(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What consodam had written (or found already right): each slot's state and handle, since when, by which run."""
    out = []
    for row in rows:
        payload = json.loads(row["payload"])
        out.append(
            {
                "key": row["record_key"],
                "state": payload.get("state"),
                "handle": payload.get("handle"),
                "since": rfc3339(row["valid_from"]),
                "run_id": row["run_id"],
            }
        )
    return out


def _live(events: list[dict[str, Any]]) -> list[LiveLink]:
    writes: dict[tuple[str, str, int], set[str]] = {}
    for written in (e for e in events if e["event_type"] == "link_written" and e["run_id"]):
        key = (written["role"], written["dam_asset_id"], written["dam_version"])
        writes.setdefault(key, set()).add(written["run_id"])
    live = []
    for role, link in sorted(live_links(events).items()):
        after = json.loads(link["after_json"] or "{}")
        live.append(
            LiveLink(
                role=role,
                asset_id=link["dam_asset_id"],
                version=link["dam_version"],
                approved_by=after.get("approved_by"),
                approved_at=rfc3339(after.get("approved_at")),
                linked_since=rfc3339(link["occurred_at"]) or "",
                written_by_runs=sorted(writes.get((role, link["dam_asset_id"], link["dam_version"]), set())),
            )
        )
    return live


def _history(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keep = ("event_type", "role", "dam_asset_id", "dam_version", "actor", "run_id")
    return [
        {"occurred_at": rfc3339(e["occurred_at"]), **{k: e[k] for k in keep}, "after": _after(e) or None}
        for e in sorted(events, key=event_order)
    ]


def _after(event: Mapping[str, Any]) -> dict[str, Any]:
    return dict(json.loads(event["after_json"] or "{}"))


def review_tasks(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each review task consodam opened for the edition, where it stood at the end of these (time-ordered)
    events, named by its task id: opened, decided (by whom, when, how) or cancelled (why). A task opened
    again after a decision is open again, its earlier outcomes kept in `earlier`."""
    tasks: dict[str, dict[str, Any]] = {}
    for event in (e for e in events if e["event_type"] in TASK_EVENTS):
        after, before = _after(event), dict(json.loads(event["before_json"] or "{}"))
        handle = str(after.get("task_id") or after.get("handle") or before.get("handle"))
        task = tasks.setdefault(handle, {"task_id": handle, "opened": None, "status": "open", "earlier": []})
        task.update({k: v for k, v in (before.get("state") or {}).items() if k not in task})
        at = rfc3339(event["occurred_at"])
        if event["event_type"] == "review_task_opened":
            if task["opened"] is not None:
                task["earlier"].append(
                    {k: task.get(k) for k in ("status", "by", "at", "reason") if task.get(k)}
                )
            for ended in ("by", "at", "reason", "decided"):
                task.pop(ended, None)
            task.update(opened=at, status="open", **(after.get("state") or {}))
        elif event["event_type"] == "review_task_completed":
            decided_at = rfc3339(after.get("decided_at") or after.get("completed_at")) or at
            task.update(
                status=after.get("decision"), by=event["actor"], at=decided_at, decided=after.get("how")
            )
        else:
            task.update(status="cancelled", reason=after.get("reason"), at=at)
    return list(tasks.values())
