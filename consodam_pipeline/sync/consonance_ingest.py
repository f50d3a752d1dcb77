"""The Consonance ingest source: products → edition records (title_metadata_snapshot), incremental by
`changedSince` with a lookback, with the reasons a product cannot be accepted.

Reasons start with a kind (`invalid_isbn`, `unknown_territory`, `malformed_date`, `missing_date`,
`unknown_code`) so quarantine counts group by kind.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import dagster as dg
import polars as pl

from consodam_pipeline.clients.consonance import ConsonanceResource, Product, validated
from consodam_pipeline.domain.isbn import InvalidISBNError, normalize_isbn
from consodam_pipeline.domain.onix import (
    PublishingStatus,
    SalesRightsType,
    UnknownCodeError,
    format_family,
    product_form_from_onix21,
)
from consodam_pipeline.domain.periods import all_periods, periods_for_works
from consodam_pipeline.domain.territories import UnknownTerritoryError, country_bit
from consodam_pipeline.store.history import SnapshotDiff
from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.sync.consonance_columns import edition_columns
from consodam_pipeline.sync.ingest import IngestConfig, IngestSource, collect
from consodam_pipeline.sync.ingest_checks import title_check_results
from consodam_pipeline.sync.snapshot import IngestBatch

ENTITY = "edition"
SOURCE = "consonance"
CHANGED_SINCE_CURSOR = "consonance.products.changed_since"
FULL_AT_CURSOR = "consonance.products.full_reconciliation_at"
# ONIX list 64: these statuses must be sent without a publication date.
NO_DATE_STATUSES = {PublishingStatus.CANCELLED, PublishingStatus.POSTPONED_INDEFINITELY}

TODO = pl.Struct(
    {"name": pl.String(), "milestone": pl.Boolean(), "due_date": pl.String(), "done_date": pl.String()}
)
EDITION_SCHEMA: dict[str, pl.DataType] = {
    "product_id": pl.Int64(),
    "isbn13": pl.String(),
    "work_id": pl.Int64(),
    "title": pl.String(),
    "subtitle": pl.String(),
    "contributors": pl.List(pl.Struct({"name": pl.String(), "role": pl.String()})),
    "imprint": pl.String(),
    "product_form": pl.String(),
    "product_form_onix21": pl.String(),
    "format_family": pl.String(),
    "publication_date": pl.String(),
    "embargo_date": pl.String(),
    "publishing_status": pl.String(),
    "project_stage": pl.String(),
    "for_sale_worldwide": pl.Boolean(),
    "for_sale_countries": pl.List(pl.String()),
    "not_for_sale_countries": pl.List(pl.String()),
    "row_sales_rights_type": pl.String(),
    "sales_rights": pl.String(),
    "todos": pl.List(TODO),
}

COLUMN_DOCS = {
    "product_id": "Consonance product id (the record key: stable across ISBN corrections)",
    "isbn13": "validated, normalised ISBN-13",
    "product_form": "ONIX 3.0 List 150 code",
    "format_family": "print | ebook | audio",
    "publication_date": "ONIX PublishingDateRole 01",
    "embargo_date": "ONIX PublishingDateRole 02 (sales embargo lifts)",
    "row_sales_rights_type": "ONIX ROWSalesRightsType (List 46) for territories not named",
    "project_stage": "where the title is in production (Consonance's projectStageName)",
    "todos": "production to-dos: name, milestone flag, due and done dates",
}


def _date(value: str | None, label: str, reasons: list[str], required: bool) -> str | None:
    if value is None or value == "":
        if required:
            reasons.append(f"missing_date: no {label}")
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        reasons.append(f"malformed_date: {label} {value!r} is not YYYY-MM-DD")
        return None


def edition_record(product: Product) -> tuple[dict[str, Any] | None, list[str]]:
    reasons: list[str] = []
    isbn13: str | None = None
    raw_isbn = product.isbn.isbn13 if product.isbn else None
    try:
        isbn13 = normalize_isbn(raw_isbn)
    except InvalidISBNError as exc:
        reasons.append(f"invalid_isbn: {exc.reason} ({raw_isbn!r})")
    for code in [*product.for_sale_country_codes, *product.not_for_sale_country_codes]:
        try:
            country_bit(code)
        except UnknownTerritoryError:
            reasons.append(f"unknown_territory: {code!r} is not an ISO 3166-1 country")
    status = form = None
    try:
        status = PublishingStatus.parse(product.onix_publishing_status_code or "00")
        form = product_form_from_onix21(product.onix21_product_form_code or "")
        if product.row_sales_rights_type_code is not None:
            SalesRightsType.parse(product.row_sales_rights_type_code)
    except UnknownCodeError as exc:
        reasons.append(f"unknown_code: {exc}")
    publication = _date(
        product.publication_date, "publication date", reasons, required=status not in NO_DATE_STATUSES
    )
    embargo = _date(product.sales_embargo_date, "sales embargo date", reasons, required=False)
    if reasons or form is None or status is None:
        return None, reasons
    return {
        "product_id": product.id,
        "isbn13": isbn13,
        "work_id": product.work.id,
        "title": product.full_title,
        "subtitle": product.subtitle or product.work.subtitle,
        "contributors": [
            {"name": c.contributor.name, "role": c.onix_contributor_role_code}
            for c in sorted(product.work.contributions, key=lambda c: c.sequence_number or 0)
        ],
        "imprint": product.imprint.name if product.imprint else None,
        "product_form": form.value,
        "product_form_onix21": product.onix21_product_form_code,
        "format_family": format_family(form).value,
        "publication_date": publication,
        "embargo_date": embargo,
        "publishing_status": status.value,
        "project_stage": product.project_stage_name,
        "for_sale_worldwide": product.is_for_sale_worldwide,
        "for_sale_countries": sorted(product.for_sale_country_codes),
        "not_for_sale_countries": sorted(product.not_for_sale_country_codes),
        "row_sales_rights_type": product.row_sales_rights_type_code,
        "sales_rights": product.sales_rights_description,
        "todos": [
            {"name": t.name, "milestone": t.milestone, "due_date": t.due_date, "done_date": t.done_date}
            for t in product.todos
        ],
    }, []


def typed_editions(frame: pl.DataFrame) -> pl.DataFrame:
    """Decoded payloads → the snapshot's column types (dates as dates), sorted by product id."""
    return (
        frame.select(list(EDITION_SCHEMA))
        .with_columns(
            pl.col("publication_date").str.to_date(strict=False),
            pl.col("embargo_date").str.to_date(strict=False),
        )
        .sort("product_id")
    )


@dataclass
class TitleSource(IngestSource):
    consonance: ConsonanceResource
    name: str = SOURCE
    title: str = "Title metadata snapshot"
    entity: str = ENTITY
    key_column: str = "product_id"
    high_water_cursor: str = CHANGED_SINCE_CURSOR
    full_at_cursor: str = FULL_AT_CURSOR
    quarantine_sources: tuple[str, ...] = (SOURCE,)
    markers_recorded_by: str | None = "dam_asset_inventory"  # the DAM step reads this snapshot

    def __post_init__(self) -> None:
        self.schema, self.column_docs = EDITION_SCHEMA, COLUMN_DOCS

    def since(self, high_water: str, config: IngestConfig) -> date:
        return date.fromisoformat(high_water) - timedelta(days=config.lookback_days)

    def window(self, since: Any) -> str:
        return f"changedSince {since.isoformat()}"

    def fetch(self, batch: IngestBatch, since: Any) -> tuple[int, int]:
        no_date = [s.value for s in NO_DATE_STATUSES]
        with self.consonance.client() as client:
            for page in client.iter_product_frames(changed_since=since):
                records, rest = edition_columns(page, no_date)
                if records.height:
                    batch.add_frame(records)
                # the rest, validated and judged one by one: their records, or their reasons
                collect([validated(Product, rest.to_dicts())], batch, edition_record, lambda p: str(p.id))
            return client.http.requests, client.http.retries

    def high_water(self, started: datetime, batch: IngestBatch, last: str | None) -> str:
        return started.date().isoformat()

    def snapshot(
        self, store: LineageStore, frame: pl.LazyFrame, run_id: str, observed_at: datetime
    ) -> tuple[Any, dict[str, Any]]:
        editions = typed_editions(frame.collect())
        reaffirmed = reaffirm_overridden_writes(store, editions, observed_at)
        return editions, {"rows": editions.height, "records_shown_again": reaffirmed}

    def changed_periods(
        self, store: LineageStore, diff: SnapshotDiff, now: Any, before: pl.LazyFrame | None
    ) -> list[str]:
        return changed_periods(diff, now, before, echoes(store, diff, now, before))

    def check_results(self, store: LineageStore, stored: pl.LazyFrame) -> list[dg.AssetCheckResult]:
        return title_check_results(store, stored, SOURCE)


def reaffirm_overridden_writes(store: LineageStore, editions: pl.DataFrame, observed_at: datetime) -> int:
    """Editions whose record consodam holds predates a field consodam wrote (a stage it advanced), where
    Consonance now shows another value again (a person set it back before any read saw consodam's): the
    record is Consonance's once more from this read, so the audit's "later of what Consonance showed and
    what consodam wrote" answers what Consonance shows."""
    written = store.bookkeeping.journal_entries("consonance")
    if not written:
        return 0
    held = store.history.open_versions(ENTITY, list(written))
    since = dict(held.select("record_key", "last_at").iter_rows())
    ids = pl.Series([int(k) for k in since], dtype=pl.Int64).implode()
    shown = {
        str(r["product_id"]): r
        for r in editions.filter(pl.col("product_id").is_in(ids)).iter_rows(named=True)
    }
    overridden = [
        key
        for key, (fields, at) in written.items()
        if key in shown and since[key] < at and any(shown[key].get(f) != v for f, v in fields.items())
    ]
    if overridden:
        with store.engine.begin() as conn:
            store.history.reaffirm(conn, ENTITY, overridden, observed_at)
    return len(overridden)


def echoes(
    store: LineageStore, diff: SnapshotDiff, now: pl.DataFrame, before: pl.LazyFrame | None
) -> set[str]:
    """Changed editions whose only differences are fields consodam's own last write set, with the values it
    set (a stage it advanced): consodam's write coming back, not a change to act on."""
    written = store.bookkeeping.journal_fields("consonance", diff.changed)
    if not written or before is None:
        return set()
    ids = pl.Series([int(k) for k in written], dtype=pl.Int64).implode()
    old = {
        r["product_id"]: r
        for r in before.filter(pl.col("product_id").is_in(ids)).collect().iter_rows(named=True)
    }
    echoed = set()
    for row in now.filter(pl.col("product_id").is_in(ids)).iter_rows(named=True):
        previous, fields = old.get(row["product_id"]), written[str(row["product_id"])]
        if previous is None:
            continue
        differing = {c for c in row if c in previous and row[c] != previous[c]}
        if differing and all(c in fields and row[c] == fields[c] for c in differing):
            echoed.add(str(row["product_id"]))
    return echoed


def changed_periods(
    diff: SnapshotDiff, now: pl.DataFrame, before: pl.LazyFrame | None, ours: Collection[str] = ()
) -> list[str]:
    """Periods of the works whose editions changed, before and after (a moved date touches both); changes
    that are consodam's own writes coming back (`ours`) touch none."""
    if before is None:
        return all_periods(now)
    keys = [k for k in (*diff.added, *diff.changed, *diff.removed) if k not in ours]
    ids = pl.Series(keys, dtype=pl.String).cast(pl.Int64).implode()
    works = set(now.filter(pl.col("product_id").is_in(ids))["work_id"].to_list())
    works |= set(before.filter(pl.col("product_id").is_in(ids)).collect()["work_id"].to_list())
    work_ids = pl.Series(sorted(works), dtype=pl.Int64).implode()
    earlier = before.filter(pl.col("work_id").is_in(work_ids)).with_columns(
        pl.col("publication_date").cast(pl.Date)
    )
    return sorted(
        set(periods_for_works(now, sorted(works))) | set(periods_for_works(earlier.collect(), sorted(works)))
    )
