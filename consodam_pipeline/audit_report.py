"""The compliance report: every change consodam recorded in a window — what changed, before and after, who
approved it, which run wrote it and into which system — with the edition's title and imprint, as CSV, Parquet
or one self-contained HTML page (a timeline per edition).

Reads the ledger and the usage log through SQLAlchemy Core; polars is imported only to write Parquet.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from consodam_pipeline.audit import EDITION, event_order, rfc3339
from consodam_pipeline.store.schema import asset_usage, audit_ledger, record_history, record_subject

# Every kind of ledger event, and the system the change it records lives in: "dam" and "consonance" are
# writes into (or decisions taken in) those systems; "consodam" are decisions consodam itself recorded.
EVENT_SYSTEMS: dict[str, str] = {
    "version_approved": "dam",
    "version_rejected": "dam",
    "version_in_review": "dam",
    "link_created": "consodam",
    "link_superseded": "consodam",
    "link_written": "consonance",
    "link_removed": "consonance",
    "restriction_applied": "dam",
    "dam_fields_cleared": "dam",
    "tags_written": "dam",
    "stage_held": "consodam",
    "stage_advanced": "consonance",
    "stage_unset": "consonance",
    "stage_written": "consonance",
    "review_task_opened": "dam",
    "review_task_completed": "dam",
    "review_task_closed": "dam",
    "package_referenced": "consonance",
    "package_reference_removed": "consonance",
    "title_sheet_published": "dam",
    "title_sheet_withdrawn": "dam",
    "published_to_collection": "dam",
    "removed_from_collection": "dam",
    "launch_package_incomplete": "consodam",
    "asset_used": "dam",  # from the DAM usage log, not the ledger
}
COLUMNS = (
    "occurred_at",
    "isbn13",
    "title",
    "imprint",
    "event_type",
    "system",
    "role",
    "dam_asset_id",
    "dam_version",
    "actor",
    "approved_by",
    "run_id",
    "before",
    "after",
    "reason",
)
FORMATS = ("csv", "parquet", "html")
_CHUNK = 500


@dataclass(frozen=True)
class ReportQuery:
    start: datetime  # inclusive, UTC
    end: datetime  # inclusive, UTC
    imprint: str | None = None
    isbns: tuple[str, ...] = ()
    events: tuple[str, ...] = ()


def report_rows(engine: sa.Engine, query: ReportQuery) -> list[dict[str, Any]]:
    """The report's rows, oldest first; each with every column in COLUMNS."""
    start, end = _naive(query.start), _naive(query.end)
    with engine.connect() as conn:
        rows = [_from_ledger(r) for r in conn.execute(_ledger_select(query, start, end)).mappings()]
        if not query.events or "asset_used" in query.events:
            rows += [_from_usage(r) for r in conn.execute(_usage_select(query, start, end)).mappings()]
        titles = _titles(conn, sorted({r["isbn13"] for r in rows if r["isbn13"]}), end)
    for row in rows:
        row["title"], row["imprint"] = titles.get(row["isbn13"], (None, None))
    if query.imprint:
        wanted = query.imprint.casefold()
        rows = [r for r in rows if (r["imprint"] or "").casefold() == wanted]
    rows.sort(key=lambda r: (*event_order(r), r["isbn13"] or "", r["event_type"]))
    for row in rows:
        row["occurred_at"] = rfc3339(row["occurred_at"])
    return rows


def _naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


def _ledger_select(query: ReportQuery, start: datetime, end: datetime) -> sa.Select[Any]:
    a = audit_ledger
    select = sa.select(a).where(a.c.occurred_at >= start, a.c.occurred_at <= end)
    if query.isbns:
        select = select.where(a.c.isbn13.in_(query.isbns))
    if query.events:
        select = select.where(a.c.event_type.in_(query.events))
    return select


def _usage_select(query: ReportQuery, start: datetime, end: datetime) -> sa.Select[Any]:
    u = asset_usage
    select = sa.select(u).where(u.c.used_at >= start, u.c.used_at <= end)
    if query.isbns:
        select = select.where(u.c.isbn13.in_(query.isbns))
    return select


def _from_ledger(event: Any) -> dict[str, Any]:
    after = _json(event["after_json"])
    after = after if isinstance(after, dict) else {}
    # A decision event names its decider `by`; what follows from an approval carries `approved_by`.
    approved_by = after.get("approved_by") or (
        after.get("by") if event["event_type"] == "version_approved" else None
    )
    return {
        "occurred_at": event["occurred_at"],
        "isbn13": event["isbn13"],
        "event_type": event["event_type"],
        "system": EVENT_SYSTEMS.get(event["event_type"], "consodam"),
        "role": event["role"],
        "dam_asset_id": event["dam_asset_id"],
        "dam_version": event["dam_version"],
        "actor": event["actor"],
        "approved_by": approved_by,
        "run_id": event["run_id"],
        "before": _text(event["before_json"]),
        "after": _text(event["after_json"]),
        "reason": after.get("reason"),
    }


def _from_usage(use: Any) -> dict[str, Any]:
    return {
        "occurred_at": use["used_at"],
        "isbn13": use["isbn13"],
        "event_type": "asset_used",
        "system": "dam",
        "role": use["role"],
        "dam_asset_id": use["asset_id"],
        "dam_version": use["dam_version"],
        "actor": use["used_by"],
        "approved_by": None,
        "run_id": None,
        "before": None,
        "after": json.dumps({"action": use["action"], "channel": use["channel"]}),
        "reason": None,
    }


def _json(text: str | None) -> Any:
    return json.loads(text) if text else {}


def _text(text: str | None) -> str | None:
    # One canonical form per value so a reviewer's diff tool and the HTML agree.
    return json.dumps(json.loads(text), sort_keys=True, ensure_ascii=False) if text else None


def _titles(conn: sa.Connection, isbns: Sequence[str], at: datetime) -> dict[str, tuple[Any, Any]]:
    """ISBN → (title, imprint) from the edition record current at `at` (or the last one before it)."""
    h, s = record_history, record_subject
    found: dict[str, tuple[Any, Any, datetime]] = {}
    for i in range(0, len(isbns), _CHUNK):
        chunk = isbns[i : i + _CHUNK]
        rows = conn.execute(
            sa.select(s.c.isbn13, h.c.payload, h.c.valid_from)
            .select_from(h.join(s, sa.and_(s.c.entity == h.c.entity, s.c.record_key == h.c.record_key)))
            .where(h.c.entity == EDITION, s.c.isbn13.in_(chunk), h.c.valid_from <= at)
        )
        for isbn13, payload, valid_from in rows:
            if isbn13 not in found or valid_from > found[isbn13][2]:
                record = json.loads(payload)
                found[isbn13] = (record.get("title"), record.get("imprint"), valid_from)
    return {isbn: (title, imprint) for isbn, (title, imprint, _) in found.items()}


def unknown_subjects(engine: sa.Engine, isbns: Sequence[str], imprint: str | None) -> str | None:
    """Why a filter can match nothing because it names what the store never held (None when it is fine):
    an empty report must mean "no change", never a typo."""
    h, s = record_history, record_subject
    with engine.connect() as conn:
        known = (
            set(conn.execute(sa.select(s.c.isbn13).where(s.c.isbn13.in_(isbns))).scalars())
            if isbns
            else set()
        )
        missing = [i for i in isbns if i not in known]
        if missing:
            return f"--isbn: the lineage store has no record of ISBN {', '.join(missing)}"
        if imprint:
            needle = json.dumps(imprint.casefold())
            held = conn.execute(
                sa.select(h.c.record_key)
                .where(h.c.entity == EDITION, sa.func.lower(h.c.payload).contains(needle, autoescape=True))
                .limit(1)
            ).first()
            if held is None:
                return f"--imprint: no edition in the lineage store has the imprint {imprint!r}"
    return None


def write_report(rows: list[dict[str, Any]], fmt: str, out: Path, query: ReportQuery, store: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        out.write_text(to_csv(rows), encoding="utf-8")
    elif fmt == "parquet":
        import polars as pl

        schema = {c: pl.Int64 if c == "dam_version" else pl.String for c in COLUMNS}
        pl.DataFrame(rows, schema=schema, orient="row" if not rows else None).write_parquet(out)
    else:
        out.write_text(to_html(rows, query, store), encoding="utf-8")


def to_csv(rows: Iterable[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def to_html(rows: list[dict[str, Any]], query: ReportQuery, store: str) -> str:
    import jinja2

    editions: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        editions.setdefault(row["isbn13"] or "(no edition)", []).append(row)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["event_type"]] = counts.get(row["event_type"], 0) + 1
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(_HTML).render(
        query=query,
        start=rfc3339(query.start),
        end=rfc3339(query.end),
        generated=rfc3339(datetime.now(UTC)),
        store=store,
        total=len(rows),
        counts=sorted(counts.items()),
        editions=sorted(editions.items()),
    )


_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>consodam compliance report {{ start }} – {{ end }}</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #1b1b1b; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 2rem; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: .25rem .5rem;
 vertical-align: top; border-bottom: 1px solid #eee; } th { background: #f4f4f4; }
.system-dam { color: #0b5394; } .system-consonance { color: #38761d; } .system-consodam { color: #674ea7; }
code { font-size: 12px; word-break: break-all; } .meta { color: #555; }
</style>
</head>
<body>
<h1>Compliance report: every change from {{ start }} to {{ end }}</h1>
<p class="meta">Generated {{ generated }} from {{ store }}.
{% if query.imprint %}Imprint: {{ query.imprint }}. {% endif %}
{% if query.isbns %}ISBNs: {{ query.isbns | join(", ") }}. {% endif %}
{% if query.events %}Events: {{ query.events | join(", ") }}. {% endif %}</p>
<section id="summary">
<p><strong id="total">{{ total }}</strong> changes across <strong>{{ editions | length }}</strong> editions.</p>
<table><thead><tr><th>event</th><th>count</th></tr></thead><tbody>
{% for kind, n in counts %}<tr><td>{{ kind }}</td><td>{{ n }}</td></tr>{% endfor %}
</tbody></table>
</section>
{% for isbn, events in editions %}
<section class="edition" id="isbn-{{ isbn }}" data-isbn="{{ isbn }}">
<h2>{{ isbn }} — {{ events[0].title or "untitled" }}{% if events[0].imprint %} ({{ events[0].imprint }}){% endif %}</h2>
<table><thead><tr><th>when (UTC)</th><th>what</th><th>system</th><th>role · version</th><th>approved by</th>
<th>actor</th><th>run</th><th>before → after</th></tr></thead><tbody>
{% for e in events %}<tr class="event" data-event="{{ e.event_type }}">
<td>{{ e.occurred_at }}</td><td>{{ e.event_type }}{% if e.reason %}<br><em>{{ e.reason }}</em>{% endif %}</td>
<td class="system-{{ e.system }}">{{ e.system }}</td>
<td>{{ e.role or "" }}{% if e.dam_asset_id %} · <code>{{ e.dam_asset_id[:12] }}</code>
 v{{ e.dam_version }}{% endif %}</td>
<td class="approved-by">{{ e.approved_by or "" }}</td><td>{{ e.actor or "" }}</td>
<td><code>{{ (e.run_id or "")[:8] }}</code></td>
<td>{% if e.before %}<code>{{ e.before }}</code> → {% endif %}<code>{{ e.after or "" }}</code></td></tr>
{% endfor %}</tbody></table>
</section>
{% else %}
<p id="empty">No change recorded in this window.</p>
{% endfor %}
</body>
</html>
"""
