"""The DAM ingest sources: asset version pages → inventory rows (dam_asset_inventory), vectorised, with the
reasons a version cannot be accepted, incremental by modified-since with a lookback; and the usage log."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice
from typing import Any

import dagster as dg
import polars as pl

from consodam_pipeline.clients.dam_models import FIELD
from consodam_pipeline.clients.opentext_dam import OpenTextDamResource, modified_after
from consodam_pipeline.domain.isbn import InvalidISBNError, isbn13_valid_expr, normalize_isbn
from consodam_pipeline.domain.periods import all_periods, periods_for_works
from consodam_pipeline.domain.roles import ApprovalStatus, AssetRole
from consodam_pipeline.domain.timestamps import format_ts, is_iso_day, parse_ts
from consodam_pipeline.store.history import SnapshotDiff
from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.sync.ingest import IngestConfig, IngestSource
from consodam_pipeline.sync.ingest_checks import inventory_check_results
from consodam_pipeline.sync.snapshot import IngestBatch

ENTITY = "dam_asset_version"
SOURCE = "dam"
ORPHAN_SOURCE = "dam_tags"
MODIFIED_CURSOR = "dam.assets.modified_after"
FULL_AT_CURSOR = "dam.assets.full_reconciliation_at"
HISTORY_FIELD = FIELD + "APPROVAL_HISTORY"
SCALAR_FIELDS = {
    FIELD + "ROLE": "role",
    FIELD + "ISBN": "isbn_raw",
    FIELD + "WORK_ID": "work_id_raw",
    FIELD + "APPROVAL_STATUS": "approval_status",
    FIELD + "APPROVED_BY": "approved_by",
    FIELD + "APPROVED_AT": "approved_at",
    FIELD + "LICENSE_FROM": "license_from",
    FIELD + "LICENSE_UNTIL": "license_until",
    FIELD + "WIDTH_PX": "width_px_raw",
    FIELD + "HEIGHT_PX": "height_px_raw",
    FIELD + "COLOUR_SPACE": "colour_space",
    FIELD + "FILE_SIZE": "file_size_raw",
    FIELD + "PAGE_COUNT": "page_count_raw",
    FIELD + "DURATION_S": "duration_s_raw",
}
# Rendition facts arrive as text; each becomes a number of this type (a value that is not one is quarantined).
NUMBERS: dict[str, pl.DataType] = {
    "width_px": pl.Int64(),
    "height_px": pl.Int64(),
    "file_size": pl.Int64(),
    "page_count": pl.Int64(),
    "duration_s": pl.Float64(),
}
KNOWN_FIELDS = {*SCALAR_FIELDS, HISTORY_FIELD}
TIMESTAMP = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$"

HISTORY_ENTRY = pl.Struct({"status": pl.String(), "by": pl.String(), "at": pl.String()})
HISTORY_COLUMNS = tuple(field.name for field in HISTORY_ENTRY.fields)  # status, by, at
TAG = pl.Struct({"id": pl.String(), "value": pl.String()})
VERSION_SCHEMA: dict[str, pl.DataType] = {
    "asset_id": pl.String(),
    "original_asset_id": pl.String(),
    "version": pl.Int64(),
    "name": pl.String(),
    "mime_type": pl.String(),
    "role": pl.String(),
    "isbn13": pl.String(),
    "work_id": pl.Int64(),
    "approval_status": pl.String(),
    "approved_by": pl.String(),
    "approved_at": pl.String(),
    "approval_history": pl.List(HISTORY_ENTRY),
    "license_from": pl.String(),
    "license_until": pl.String(),
    "security_policy_ids": pl.List(pl.Int64()),
    "tags": pl.List(TAG),
    "modified_at": pl.String(),
    "width_px": pl.Int64(),
    "height_px": pl.Int64(),
    "colour_space": pl.String(),
    "file_size": pl.Int64(),
    "page_count": pl.Int64(),
    "duration_s": pl.Float64(),
}

COLUMN_DOCS = {
    "asset_id": "DAM id of this version (each version has its own id)",
    "original_asset_id": "id shared by every version of the asset",
    "role": "asset role (ONIX List 158 content type + List 159 mode)",
    "isbn13": "edition the asset is tagged with (null: shared by the work)",
    "is_latest": "the newest version of its asset",
    "orphan_tag": "tagged with an ISBN or work no edition has (held in quarantine; excluded downstream)",
    "tags": "other metadata fields (title tags, restrictions written by consodam)",
    "width_px": "rendition: width in pixels (images)",
    "colour_space": "rendition: RGB, CMYK, …",
    "page_count": "rendition: pages (documents)",
    "duration_s": "rendition: length in seconds (audio)",
}


def _scalar_columns(elements: pl.DataFrame) -> pl.DataFrame:
    scalars = elements.filter(pl.col("metadata_element_list").is_null()).select(
        "asset_id", "id", pl.col("value").struct.field("value").struct.field("value").alias("v")
    )
    known = scalars.filter(pl.col("id").is_in(list(SCALAR_FIELDS)))
    wide = (
        known.pivot(on="id", index="asset_id", values="v", aggregate_function="first")
        if known.height
        else (elements.select("asset_id").unique())
    )
    missing = [pl.lit(None, pl.String).alias(f) for f in SCALAR_FIELDS if f not in wide.columns]
    wide = wide.with_columns(missing).rename(SCALAR_FIELDS)
    tags = (
        scalars.filter(~pl.col("id").is_in(list(KNOWN_FIELDS)) & pl.col("v").is_not_null())
        .sort("asset_id", "id")
        .group_by("asset_id", maintain_order=True)
        .agg(pl.struct(pl.col("id"), pl.col("v").alias("value")).alias("tags"))
    )
    return wide.join(tags, on="asset_id", how="left")


def _history(elements: pl.DataFrame) -> pl.DataFrame:
    """Each version's approval history: entry i of its status, by and at columns (the first column of each
    name; a shorter or missing column gives null there; other columns are not read)."""
    columns = (
        elements.filter(pl.col("id") == HISTORY_FIELD)
        .select("asset_id", pl.col("metadata_element_list").alias("column"))
        .explode("column")
        .unnest("column")
        .select(
            "asset_id",
            pl.col("id").str.extract(r"_([A-Z]+)$").str.to_lowercase().alias("name"),
            pl.col("values")
            .list.eval(pl.element().struct.field("value").struct.field("value"))
            .alias("values"),
        )
    )
    # One row per version with a list per column, padded with nulls to the longest and exploded side by
    # side: a pivot of every cell cost twice as much.
    lists = columns.group_by("asset_id").agg(
        pl.col("values").filter(pl.col("name") == name).first().fill_null([]).alias(name)
        for name in HISTORY_COLUMNS
    )
    longest = pl.max_horizontal(pl.col(name).list.len() for name in HISTORY_COLUMNS)
    padding = [
        pl.lit(None, pl.String).repeat_by(longest - pl.col(name).list.len()) for name in HISTORY_COLUMNS
    ]
    return (
        lists.filter(longest > 0)
        .with_columns(
            pl.col(name).list.concat(pad) for name, pad in zip(HISTORY_COLUMNS, padding, strict=True)
        )
        .explode(*HISTORY_COLUMNS)
        .group_by("asset_id", maintain_order=True)
        .agg(pl.struct(*HISTORY_COLUMNS).alias("approval_history"))
    )


STATUSES = [s.value for s in ApprovalStatus]


def _normalize_slow_isbns(raw: list[str]) -> dict[str, tuple[str | None, str | None]]:
    """The rare tags the vectorised path cannot take (ISBN-10, odd spellings, invalid): one by one."""
    out: dict[str, tuple[str | None, str | None]] = {}
    for value in raw:
        try:
            out[value] = (normalize_isbn(value), None)
        except InvalidISBNError as exc:
            out[value] = (None, f"invalid_isbn: tag {exc.reason} ({value!r})")
    return out


# Pages are normalised sixteen at a time: each frame operation has a fixed cost, which one page does not
# amortise (pages of 1,000 versions: 16.3 ms a page in fours, 12.5 in eights, 9.7 in sixteens, for 77 MB
# more at the peak than in fours). The client's fetch-ahead goes on meanwhile: sixteen take ~155 ms to
# normalise, in which the DAM serves about one more page (one every ~140 ms, two at a time), so four pages
# ahead keep its two requests going.
NORMALIZE_PAGES = 16


def batched(pages: Iterable[pl.DataFrame], size: int) -> Iterator[list[pl.DataFrame]]:
    it = iter(pages)
    while chunk := list(islice(it, size)):
        yield chunk


def normalize_versions(assets: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(good rows in VERSION_SCHEMA, rejected rows: record_key, reason, payload)."""
    elements = assets.select("asset_id", "elements").explode("elements").unnest("elements").drop_nulls("id")
    frame = (
        assets.select(
            "asset_id",
            "original_asset_id",
            "version",
            "name",
            "mime_type",
            "policies",
            pl.col("date_last_updated").alias("modified_at"),
        )
        .join(_scalar_columns(elements), on="asset_id", how="left")
        .join(_history(elements), on="asset_id", how="left")
        .with_columns(pl.col("isbn_raw").str.replace_all(r"[\s\-]", "").alias("isbn_clean"))
        .with_columns(isbn13_valid_expr("isbn_clean").alias("isbn_fast"))
    )
    slow = (
        frame.filter(pl.col("isbn_raw").is_not_null() & ~pl.col("isbn_fast"))["isbn_raw"].unique().to_list()
    )
    fixes = _normalize_slow_isbns(slow)
    fix_frame = pl.DataFrame(
        {
            "isbn_raw": list(fixes),
            "isbn_fixed": [v[0] for v in fixes.values()],
            "isbn_reason": [v[1] for v in fixes.values()],
        },
        schema={"isbn_raw": pl.String, "isbn_fixed": pl.String, "isbn_reason": pl.String},
    )
    frame = frame.join(fix_frame, on="isbn_raw", how="left").with_columns(
        pl.when(pl.col("isbn_fast"))
        .then(pl.col("isbn_clean"))
        .otherwise(pl.col("isbn_fixed"))
        .alias("isbn13"),
        pl.col("work_id_raw").cast(pl.Int64, strict=False).alias("work_id"),
        *[pl.col(f"{name}_raw").cast(dtype, strict=False).alias(name) for name, dtype in NUMBERS.items()],
    )
    reasons = (
        pl.concat_list(
            pl.when(~pl.col("role").is_in([r.value for r in AssetRole]) | pl.col("role").is_null()).then(
                pl.format("unknown_code: asset role '{}'", pl.col("role").fill_null("none"))
            ),
            pl.when(~pl.col("approval_status").is_in(STATUSES) | pl.col("approval_status").is_null()).then(
                pl.format("unknown_code: approval status '{}'", pl.col("approval_status").fill_null("none"))
            ),
            pl.col("isbn_reason"),
            pl.when(pl.col("work_id_raw").is_not_null() & pl.col("work_id").is_null()).then(
                pl.format("unknown_code: work id '{}'", pl.col("work_id_raw"))
            ),
            pl.when(
                pl.col("approved_at").is_not_null() & ~pl.col("approved_at").str.contains(TIMESTAMP)
            ).then(pl.format("malformed_date: approved at '{}'", pl.col("approved_at"))),
            *[
                pl.when(pl.col(f"{n}_raw").is_not_null() & pl.col(n).is_null()).then(
                    pl.format("malformed_number: {} '{}'", pl.lit(n.replace("_", " ")), pl.col(f"{n}_raw"))
                )
                for n in NUMBERS
            ],
            *[
                pl.when(pl.col(c).is_not_null() & ~is_iso_day(c)).then(
                    pl.format(
                        "malformed_date: {} '{}' is not YYYY-MM-DD", pl.lit(c.replace("_", " ")), pl.col(c)
                    )
                )
                for c in ("license_from", "license_until")
            ],
        )
        .list.drop_nulls()
        .alias("reasons")
    )
    frame = frame.with_columns(
        reasons,
        pl.col("approval_history").fill_null(pl.lit([], dtype=pl.List(HISTORY_ENTRY))),
        pl.col("tags").fill_null(pl.lit([], dtype=pl.List(TAG))),
        pl.col("policies").list.sort().alias("security_policy_ids"),
    )
    good = frame.filter(pl.col("reasons").list.len() == 0).select(
        [pl.col(name).cast(dtype) for name, dtype in VERSION_SCHEMA.items()]
    )
    bad = frame.filter(pl.col("reasons").list.len() > 0)
    rejected = bad.select(
        pl.col("asset_id").alias("record_key"),
        pl.col("reasons").alias("reason"),
        pl.struct(pl.all().exclude("reasons", "isbn_clean", "isbn_fast", "isbn_fixed", "isbn_reason"))
        .struct.json_encode()
        .alias("payload"),
    ).explode("reason")
    return good, rejected


def typed_inventory(frame: pl.LazyFrame) -> pl.LazyFrame:
    """Rows in the DAM's own order, typed, each marked whether it is its asset's newest version.

    The newest versions are collected first (one small frame) and matched by membership: a window or
    a self-join here would hold the whole inventory while the snapshot is streamed to its file."""
    newest = (
        frame.group_by("original_asset_id")
        .agg(pl.col("version").max())
        .select(_version_key())
        .collect(engine="streaming")
        .to_series()
    )
    return frame.select(list(VERSION_SCHEMA)).with_columns(
        _version_key().is_in(newest.implode()).alias("is_latest"),
        pl.col("license_from").str.to_date(strict=False),
        pl.col("license_until").str.to_date(strict=False),
    )


def _version_key() -> pl.Expr:
    return pl.format("{}#{}", pl.col("original_asset_id"), pl.col("version")).alias("version_key")


# A DAM version's identity and decision: what every reader of the inventory starts from.
VERSION_IDENTITY = [
    "asset_id",
    "original_asset_id",
    "version",
    "role",
    "isbn13",
    "work_id",
    "approval_status",
]
# What the edition-level assets read from a version; our own writes (tags, restrictions, policies) are not in
# it, so the DAM changes consodam itself makes do not send the edition graph round again.
RELEVANT = [
    *VERSION_IDENTITY,
    "approved_at",
    "license_from",
    "license_until",
    "orphan_tag",
    "mime_type",
    "width_px",
    "height_px",
    "colour_space",
    "page_count",
    "duration_s",
]


@dataclass
class InventorySource(IngestSource):
    dam: OpenTextDamResource
    editions: pl.DataFrame  # title_metadata_snapshot: which ISBNs and works exist
    name: str = SOURCE
    title: str = "DAM asset inventory"
    entity: str = ENTITY
    key_column: str = "asset_id"
    high_water_cursor: str = MODIFIED_CURSOR
    full_at_cursor: str = FULL_AT_CURSOR
    quarantine_sources: tuple[str, ...] = (SOURCE, ORPHAN_SOURCE)

    def __post_init__(self) -> None:
        self.schema, self.column_docs = VERSION_SCHEMA, COLUMN_DOCS

    def since(self, high_water: str, config: IngestConfig) -> str:
        return format_ts(parse_ts(high_water) - timedelta(seconds=config.lookback_seconds))

    def window(self, since: Any) -> str:
        return f"modified after {since}"

    def fetch(self, batch: IngestBatch, since: Any) -> tuple[int, int]:
        with self.dam.client() as client:
            if since is None:
                pages = client.iter_asset_frames(all_versions=True)
            else:
                pages = client.search_frames([modified_after(since)], all_versions=True)
            for chunk in batched(pages, NORMALIZE_PAGES):
                versions = pl.concat(chunk)
                good, rejected = normalize_versions(versions)
                batch.add_frame(good)
                batch.reject_frame(rejected)
                batch.pages += len(chunk)
                batch.high_water = max(batch.high_water, str(versions["date_last_updated"].max() or ""))
            return client.http.requests, client.http.retries

    def high_water(self, started: datetime, batch: IngestBatch, last: str | None) -> str | None:
        return max(last or "", batch.high_water) or None

    def snapshot(
        self, store: LineageStore, frame: pl.LazyFrame, run_id: str, observed_at: datetime
    ) -> tuple[Any, dict[str, Any]]:
        flagged, orphans = flag_orphans(store, typed_inventory(frame), self.editions, run_id)
        return flagged, {"orphan_tagged_versions": orphans, **inventory_figures(flagged)}

    def changed_periods(
        self, store: LineageStore, diff: SnapshotDiff, now: Any, before: pl.LazyFrame | None
    ) -> list[str]:
        """Periods of the works whose versions changed in what the edition-level assets read. Rows are
        compared by a hash of their RELEVANT columns, so neither snapshot is held whole in memory."""
        if before is None:
            return all_periods(self.editions)
        now_rows, before_rows = _relevant_rows(now), _relevant_rows(before)
        appeared = now_rows.join(before_rows, on="row", how="anti").collect(engine="streaming")
        gone = before_rows.join(now_rows, on="row", how="anti").collect(engine="streaming")
        moved = pl.concat([_not_our_own(store, appeared), gone])
        works = moved["work_id"].drop_nulls().unique().to_list()
        isbns = moved["isbn13"].drop_nulls().unique().implode()
        works += self.editions.filter(pl.col("isbn13").is_in(isbns))["work_id"].to_list()
        return periods_for_works(self.editions, sorted(set(works)))

    def check_results(self, store: LineageStore, stored: pl.LazyFrame) -> list[dg.AssetCheckResult]:
        return inventory_check_results(store, stored, *self.quarantine_sources)


def _relevant_rows(frame: pl.LazyFrame) -> pl.LazyFrame:
    return frame.select(
        "work_id", "isbn13", "asset_id", "modified_at", pl.struct(RELEVANT).hash(seed=0).alias("row")
    )


def _not_our_own(store: LineageStore, appeared: pl.DataFrame) -> pl.DataFrame:
    """Rows that are not consodam's own writes seen again: a version it created (a title sheet) and nobody
    touched since shows the stamp the echo journal kept for it."""
    ours = store.bookkeeping.journal("dam", appeared["asset_id"].to_list())
    if not ours:
        return appeared
    echo = [
        a for a, at in zip(appeared["asset_id"], appeared["modified_at"], strict=True) if ours.get(a) == at
    ]
    return appeared.filter(~pl.col("asset_id").is_in(pl.Series(echo, dtype=pl.String).implode()))


def orphan_tag(editions: pl.DataFrame) -> pl.Expr:
    """A version tagged with an ISBN or work that no edition has."""
    known_isbns = editions["isbn13"].unique().implode()
    known_works = editions["work_id"].unique().implode()
    orphan = (pl.col("isbn13").is_not_null() & ~pl.col("isbn13").is_in(known_isbns)) | (
        pl.col("work_id").is_not_null() & ~pl.col("work_id").is_in(known_works)
    )
    return orphan.alias("orphan_tag")


def flag_orphans(
    store: LineageStore, versions: pl.LazyFrame, editions: pl.DataFrame, run_id: str
) -> tuple[pl.LazyFrame, int]:
    """Versions tagged with an ISBN or work that no edition has: flagged, and quarantined until it exists."""
    flagged = versions.with_columns(orphan_tag(editions))
    orphans = flagged.filter(pl.col("orphan_tag")).select("asset_id", "isbn13", "work_id").collect()
    rows = [
        (
            r["asset_id"],
            f"orphan_tag: tagged ISBN {r['isbn13']} / work {r['work_id']} matches no edition",
            json.dumps({"asset_id": r["asset_id"], "isbn13": r["isbn13"], "work_id": r["work_id"]}),
        )
        for r in orphans.iter_rows(named=True)
    ]
    with store.engine.begin() as conn:
        store.quarantine.hold(conn, ORPHAN_SOURCE, rows, run_id=run_id, complete=True)
    return flagged, orphans.height


def inventory_figures(frame: pl.LazyFrame) -> dict[str, int]:
    """What the materialization reports, in one streaming pass over the snapshot."""
    figures = frame.select(
        pl.len().alias("rows"),
        pl.col("original_asset_id").n_unique().alias("assets"),
        (pl.col("approval_status") == "approved").sum().alias("approved_versions"),
    ).collect(engine="streaming")
    return {name: int(value) for name, value in figures.row(0, named=True).items()}
