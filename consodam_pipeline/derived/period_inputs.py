"""What a derivation over periods read, as one fingerprint per period.

A derivation whose rules are fixed derives the same rows from the same inputs: when a period's editions and
asset versions are those it was last derived from, a run can leave that period's ledger alone. The
fingerprint covers every column the derivation reads, the derivation's revision and polars' version (its
row hashes are stable within one version only); a changed one of either derives every period once again.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Sequence

import polars as pl

from consodam_pipeline.domain.periods import work_periods

FINGERPRINT_PREFIX = "derived_from"  # cursor name: derived_from:<asset>:<period>


def fingerprint_cursor(asset: str, period: str) -> str:
    return f"{FINGERPRINT_PREFIX}:{asset}:{period}"


def period_fingerprints(
    editions: pl.DataFrame,
    versions: pl.DataFrame,
    keys: Sequence[str],
    edition_columns: Sequence[str],
    revision: str,
) -> dict[str, str]:
    """period → a digest of its editions (these columns) and of every version tagged with one of their
    ISBNs or works (all of `versions`' columns), whatever order the rows come in."""
    periods = work_periods(editions)
    owned = editions.join(periods, on="work_id")
    edition_rows = owned.select("period", pl.struct(*edition_columns).hash().alias("row"))
    hashed = versions.select(
        "asset_id", "work_id", "isbn13", pl.struct(*versions.columns).hash().alias("row")
    )
    by_work = hashed.join(periods, on="work_id").select("period", "asset_id", "row")
    by_isbn = hashed.join(owned.select("isbn13", "period"), on="isbn13").select("period", "asset_id", "row")
    version_rows = pl.concat([by_work, by_isbn]).unique(subset=["period", "asset_id"]).drop("asset_id")
    sorted_rows = [_sorted_by_period(edition_rows), _sorted_by_period(version_rows)]
    stamp = f"{revision}|polars {pl.__version__}".encode()
    none = pl.Series([], dtype=pl.UInt64)
    return {key: _digest(stamp, [rows.get(key, none) for rows in sorted_rows]) for key in keys}


def _sorted_by_period(rows: pl.DataFrame) -> dict[str, pl.Series]:
    grouped = rows.group_by("period").agg(pl.col("row").sort())
    return dict(zip(grouped["period"].to_list(), grouped["row"], strict=True))


def _digest(stamp: bytes, parts: list[pl.Series]) -> str:
    digest = hashlib.sha256(stamp)
    for rows in parts:
        digest.update(len(rows).to_bytes(8, "little"))
        digest.update(array("Q", rows.to_list()).tobytes())
    return digest.hexdigest()
