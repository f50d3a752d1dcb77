"""From the DAM inventory and the editions to approval events, link timelines and current links.

The rules are `domain/links.py`; this module applies them to whole columns at once. For each
(edition, role) every moment an approval starts or ends is a row, every candidate approval live at
that moment joins it, and the `pick` rules become two sorted group picks. A backfill of the backlist
is millions of such moments, which one pass over Python objects per (edition, role) cannot afford.
"""

import io
from collections.abc import Iterator
from dataclasses import dataclass, field

import polars as pl

from consodam_pipeline.domain.periods import versions_of
from consodam_pipeline.domain.roles import MARKETING_ROLES, AssetRole
from consodam_pipeline.domain.timestamps import parse_ts, to_naive_utc
from consodam_pipeline.store.ledger import EVENT_ROWS, with_event_ids

LINK_COLUMNS = {
    "product_id": pl.Int64,
    "isbn13": pl.String,
    "work_id": pl.Int64,
    "role": pl.String,
    "resource_content_type": pl.String,
    "asset_id": pl.String,
    "original_asset_id": pl.String,
    "version": pl.Int64,
    "approved_by": pl.String,
    "approved_at": pl.String,
    "scope": pl.String,
    "linked_since": pl.String,
}

SLOT = ["product_id", "role"]  # one link per edition and role
# What tells one approval from another (the fields of domain.links.Approval).
APPROVAL = ["asset_id", "original_asset_id", "version", "at", "by", "edition_specific", "revoked_at"]
CONTENT_TYPES = {role.value: role.content_type.value for role in AssetRole.with_onix_codes()}


def approval_entries(versions: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One row per approval in the DAM's history, with the time a later rejection revoked it (if any)."""
    history = (
        versions.filter(~pl.col("orphan_tag"))
        .select("asset_id", "original_asset_id", "version", "role", "isbn13", "work_id", "approval_history")
        .explode("approval_history")
        .drop_nulls("approval_history")
        .unnest("approval_history")
    )
    approved = history.filter((pl.col("status") == "approved") & pl.col("role").is_in(MARKETING_ROLES))
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
        [
            specific.with_columns(pl.lit(True).alias("edition_specific")),
            shared.with_columns(pl.lit(False).alias("edition_specific")),
        ],
        how="diagonal_relaxed",
    )


@dataclass
class LinkHistory:
    """Current links and ledger events (EVENT_ROWS) for a slice of editions."""

    current: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=LINK_COLUMNS))
    events: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=EVENT_ROWS))


def link_history_chunks(
    editions: pl.DataFrame,
    versions: pl.DataFrame,
    run_id: str | None,
    editions_per_chunk: int = 4_000,
    *,
    with_events: bool = True,
) -> Iterator[LinkHistory]:
    """The same, a slice of editions at a time, so a backfill of the whole backlist holds one slice of
    events in memory, not millions (nor the whole DAM's approval history: each slice reads its own
    versions'). Without events: the current links alone."""
    ids = editions["product_id"].unique().sort()
    for start in range(0, len(ids), editions_per_chunk):
        subset = editions.filter(pl.col("product_id").is_in(ids.slice(start, editions_per_chunk).implode()))
        approvals, history = approval_entries(versions_of(versions, subset))
        yield history_for(subset, approvals, history, run_id, with_events=with_events)


def history_for(
    editions: pl.DataFrame,
    approvals: pl.DataFrame,
    history: pl.DataFrame,
    run_id: str | None,
    *,
    with_events: bool = True,
) -> LinkHistory:
    attached = (
        candidates(editions, approvals)
        .unique(subset=[*SLOT, *APPROVAL])
        .with_row_index("candidate")
        .with_columns(pl.col("candidate").cast(pl.Int64))
    )
    changes = link_changes(attached)
    current = owned(current_links(changes, attached))
    if not with_events:
        return LinkHistory(current=current)
    events = pl.concat(
        [*link_events(changes, attached), approval_events(editions, history)], how="vertical_relaxed"
    )
    return LinkHistory(
        current=current,
        events=with_event_ids(events.with_columns(pl.lit(run_id, pl.String).alias("run_id"))),
    )


def owned(frame: pl.DataFrame) -> pl.DataFrame:
    """A copy holding only its own rows' bytes. A few rows picked from a large frame share its string
    buffers: kept across a backfill's slices, they would keep every slice's buffers alive (at 100k works,
    2 GB of them)."""
    buffer = io.BytesIO()
    frame.write_ipc(buffer)
    buffer.seek(0)
    return pl.read_ipc(buffer)


def link_changes(attached: pl.DataFrame) -> pl.DataFrame:
    """(product_id, role, moment, candidate, previous): each moment the linked approval changes.

    `candidate` is null from a moment on which nothing is approved any more; `previous` is the
    approval linked until then (null for the first link).
    """
    starts = attached.select(*SLOT, pl.col("at").alias("moment"))
    ends = attached.select(*SLOT, pl.col("revoked_at").alias("moment")).drop_nulls("moment")
    moments = pl.concat([starts, ends]).unique()
    live = moments.join(attached.select(*SLOT, "candidate", *APPROVAL), on=SLOT).filter(
        (pl.col("at") <= pl.col("moment"))
        & (pl.col("revoked_at").is_null() | (pl.col("revoked_at") > pl.col("moment")))
    )
    # Rule 2: of each asset, its newest approved version; rules 1 and 3: specific scope, then latest.
    newest = live.group_by(*SLOT, "moment", "original_asset_id").agg(
        pl.all().sort_by("version", "at", "by", "revoked_at").last()
    )
    chosen = newest.group_by(*SLOT, "moment").agg(
        pl.col("candidate").sort_by("edition_specific", "at", "original_asset_id").last()
    )
    per_moment = (
        moments.join(chosen, on=[*SLOT, "moment"], how="left")
        .sort(*SLOT, "moment")
        .with_columns(pl.col("candidate").shift(1).over(SLOT).alias("previous"))
    )
    return per_moment.filter(pl.col("candidate").ne_missing(pl.col("previous")))


def _link_json(prefix: str = "") -> pl.Expr:
    """The link as the ledger shows it; keys in sorted order, the canonical JSON of store.ledger."""
    return pl.struct(
        pl.col(f"{prefix}at").alias("approved_at"),
        pl.col(f"{prefix}by").alias("approved_by"),
        pl.col(f"{prefix}asset_id").alias("asset_id"),
        pl.col(f"{prefix}original_asset_id").alias("original_asset_id"),
        _scope(prefix),
        pl.col(f"{prefix}version").alias("version"),
    ).struct.json_encode()


def _scope(prefix: str = "") -> pl.Expr:
    """Whether the approval was for this edition alone or for every edition of the work."""
    return (
        pl.when(pl.col(f"{prefix}edition_specific")).then(pl.lit("edition")).otherwise(pl.lit("work"))
    ).alias("scope")


def link_events(changes: pl.DataFrame, attached: pl.DataFrame) -> list[pl.DataFrame]:
    """link_superseded for the approval a change ends, link_created for the one it starts."""
    edition = attached.select("candidate", "isbn13", "work_id")
    link = attached.select("candidate", *APPROVAL)
    before = link.rename({c: f"before_{c}" for c in link.columns})
    moved = (
        changes.join(edition, left_on=pl.coalesce("candidate", "previous"), right_on="candidate", how="left")
        .join(link, on="candidate", how="left")
        .join(before, left_on="previous", right_on="before_candidate", how="left")
    )
    superseded = moved.filter(pl.col("previous").is_not_null()).select(
        pl.lit("link_superseded").alias("event_type"),
        "moment",
        "isbn13",
        "work_id",
        "role",
        pl.col("before_asset_id").alias("dam_asset_id"),
        pl.col("before_version").alias("dam_version"),
        pl.col("before_by").alias("actor"),
        pl.lit(None, pl.String).alias("before_json"),
        _link_json("before_").alias("after_json"),
    )
    created = moved.filter(pl.col("candidate").is_not_null()).select(
        pl.lit("link_created").alias("event_type"),
        "moment",
        "isbn13",
        "work_id",
        "role",
        pl.col("asset_id").alias("dam_asset_id"),
        pl.col("version").alias("dam_version"),
        pl.col("by").alias("actor"),
        pl.when(pl.col("previous").is_not_null()).then(_link_json("before_")).alias("before_json"),
        _link_json().alias("after_json"),
    )
    return [_as_ledger_rows(superseded), _as_ledger_rows(created)]


def approval_events(editions: pl.DataFrame, history: pl.DataFrame) -> pl.DataFrame:
    """Every approval decision of the DAM, once per edition it concerns (so an ISBN's audit shows it)."""
    decisions = history.filter(pl.col("status").is_in(["approved", "rejected", "in_review"]))
    attached = candidates(editions, decisions)
    return _as_ledger_rows(
        attached.select(
            pl.concat_str(pl.lit("version_"), pl.col("status")).alias("event_type"),
            pl.col("at").alias("moment"),
            "isbn13",
            "work_id",
            "role",
            pl.col("asset_id").alias("dam_asset_id"),
            pl.col("version").alias("dam_version"),
            pl.col("by").alias("actor"),
            pl.lit(None, pl.String).alias("before_json"),
            pl.struct("by", "status").struct.json_encode().alias("after_json"),
        )
    )


def _as_ledger_rows(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        "event_type",
        parse_moments(frame["moment"]).alias("occurred_at"),
        "isbn13",
        pl.col("work_id").cast(pl.String),
        "dam_asset_id",
        pl.col("dam_version").cast(pl.Int64),
        "role",
        "actor",
        "before_json",
        "after_json",
    )


def parse_moments(moments: pl.Series) -> pl.Series:
    """DAM times as naive UTC; the sandbox's `...sss Z` form column-wise, any other ISO form one by one."""
    fast = moments.str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", time_unit="us", strict=False)
    missed = fast.is_null() & moments.is_not_null()
    if not missed.any():
        return fast
    slow = pl.Series([to_naive_utc(parse_ts(m)) if m is not None else None for m in moments.filter(missed)])
    return fast.scatter(missed.arg_true(), slow.cast(pl.Datetime("us")))


def current_links(changes: pl.DataFrame, attached: pl.DataFrame) -> pl.DataFrame:
    """The link each (edition, role) has now: the last change, when it left something approved."""
    last = changes.group_by(SLOT).agg(pl.all().sort_by("moment").last()).drop_nulls("candidate")
    return (
        last.join(attached.drop(*SLOT), on="candidate")
        .select(
            "product_id",
            "isbn13",
            "work_id",
            "role",
            pl.col("role").replace_strict(CONTENT_TYPES, default=None).alias("resource_content_type"),
            "asset_id",
            "original_asset_id",
            "version",
            pl.col("by").alias("approved_by"),
            pl.col("at").alias("approved_at"),
            _scope(),
            pl.col("moment").alias("linked_since"),
        )
        .cast(LINK_COLUMNS)  # type: ignore[arg-type]
        .sort(SLOT)
    )
