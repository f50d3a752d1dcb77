"""The compliance report as pages a reviewer opens in a browser: self-contained HTML (no script, no external
resource), a summary first (changes by type, system and imprint; editions changed), then each edition as a
collapsed section whose rows show the fields that changed (before → after), not JSON; what concerns no
edition in its own section at the end. A page holds at most `PAGE` editions; the pages link to each other.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

PAGE = 500  # editions per page
VALUE_CHARS = 80  # a value longer than this is cut, with an ellipsis (CSV and Parquet keep it whole)
# Prefixes that say nothing to a reviewer: a written slot's `state`, a DAM field's namespace.
NOISE = ("state.fields.", "state.", "fields.", "CONSODAM.RIGHTS.", "CONSODAM.TAG.", "CONSODAM.SHEET.")
NO_EDITION = "(no edition)"
# What a row's own columns show already: left out of "what changed" when nothing came before.
SHOWN = {"asset_id", "original_asset_id", "version", "approved_by", "by", "handle", "task_id", "status"}
TEMPLATE = Path(__file__).with_name("report.html.j2")


def _flat(value: Any, prefix: str = "") -> dict[str, str]:
    """A JSON value as dotted field names → short text."""
    if isinstance(value, dict):
        flat: dict[str, str] = {}
        for key, item in value.items():
            flat |= _flat(item, f"{prefix}{key}.")
        return flat
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        text = " ".join(str(v) for v in value)
    else:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    name = prefix.rstrip(".")
    for noise in NOISE:
        name = name.replace(noise, "")
    return {name.lower() if name.isupper() else name: _cut(str(text))}


def _cut(text: str) -> str:
    if len(text) == 24 and text[10] == "T" and text.endswith("Z"):  # the systems' timestamps, to the second
        text = f"{text[:10]} {text[11:19]}"
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 1] + "…"


def changed_fields(before: str | None, after: str | None) -> list[tuple[str, str | None, str | None]]:
    """(field, before, after) for each field whose value differs; with nothing before, every field after but
    those the row's other columns already show (the version, who approved it)."""
    old = _flat(json.loads(before)) if before else {}
    new = _flat(json.loads(after)) if after else {}
    names = [n for n in dict.fromkeys([*new, *old]) if old or n not in SHOWN]
    return [(n, old.get(n), new.get(n)) for n in names if old.get(n) != new.get(n)]


@dataclass
class Edition:
    isbn13: str
    title: str
    imprint: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def kinds(self) -> str:
        return ", ".join(f"{k} {n}" for k, n in Counter(r["event_type"] for r in self.rows).most_common())


def _rows(report: pl.DataFrame) -> Iterator[dict[str, Any]]:
    shown = report.select(
        pl.col("occurred_at").str.replace("T", " ").str.replace(r"(\.\d+)?Z$", "").alias("when"),
        pl.col("isbn13").fill_null(NO_EDITION),
        "title",
        "imprint",
        "event_type",
        "system",
        "role",
        "dam_asset_id",
        "dam_version",
        "actor",
        "approved_by",
        pl.col("run_id").str.slice(0, 8),
        "before",
        "after",
        "reason",
    )
    for row in shown.iter_rows(named=True):
        version = f"v{row['dam_version']}" if row["dam_version"] is not None else ""
        asset = (row["dam_asset_id"] or "")[:12]
        row["what"] = " ".join(p for p in (row["role"], version) if p)
        row["asset"] = asset
        row["changes"] = changed_fields(row["before"], row["after"])
        yield row


def editions_of(report: pl.DataFrame) -> list[Edition]:
    """The report's rows by edition, in ISBN order; the rows about no edition last."""
    editions: dict[str, Edition] = {}
    for row in _rows(report):
        isbn = row["isbn13"]
        edition = editions.setdefault(isbn, Edition(isbn, row["title"] or "untitled", row["imprint"] or ""))
        edition.rows.append(row)
    return sorted(editions.values(), key=lambda e: (e.isbn13 == NO_EDITION, e.isbn13))


def summary(report: pl.DataFrame) -> dict[str, Any]:
    """Changes (and editions changed) by type and system, by system, by imprint."""
    named = report.with_columns(pl.col("imprint").fill_null("(no imprint)"))

    def counts(*by: str) -> list[tuple[Any, ...]]:
        grouped = named.group_by(*by).agg(pl.len().alias("n"), pl.col("isbn13").n_unique().alias("editions"))
        return grouped.sort("n", *by, descending=[True, *(False for _ in by)]).rows()

    return {
        "total": report.height,
        "editions": report["isbn13"].drop_nulls().n_unique(),
        "by_type": counts("event_type", "system"),
        "by_system": counts("system"),
        "by_imprint": counts("imprint"),
    }


def page_paths(out: Path, pages: int) -> list[Path]:
    """report.html, report.p2.html, … (the first page keeps the name asked for)."""
    return [out if i == 0 else out.with_name(f"{out.stem}.p{i + 1}{out.suffix}") for i in range(pages)]


def write_html(report: pl.DataFrame, out: Path, header: Mapping[str, Any], page: int = PAGE) -> list[Path]:
    """The report as linked pages of at most `page` editions each; returns the files written."""
    import jinja2

    editions = editions_of(report)
    chunks = [editions[i : i + page] for i in range(0, len(editions), page)] or [[]]
    paths = page_paths(out, len(chunks))
    env = jinja2.Environment(
        autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True
    )
    template = env.from_string(TEMPLATE.read_text(encoding="utf-8"))
    totals = summary(report)
    generated = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for number, (chunk, path) in enumerate(zip(chunks, paths, strict=True), start=1):
        links = [(i + 1, p.name, i + 1 == number) for i, p in enumerate(paths)]
        first, last = chunk[0].isbn13 if chunk else "", chunk[-1].isbn13 if chunk else ""
        path.write_text(
            template.render(
                **header,
                generated=generated,
                summary=totals,
                editions=chunk,
                page=number,
                pages=links,
                span=(first, last),
                per_page=page,
                no_edition=NO_EDITION,
            ),
            encoding="utf-8",
        )
    return paths
