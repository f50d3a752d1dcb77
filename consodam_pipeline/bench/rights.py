"""`consodam bench rights`: the vectorised rights matrix against a naive per-row implementation.

The matrix is built in a process of its own that reads its inputs from Parquet the way `rights_matrix`
does (only the columns it and its checks read, the inventory sliced to the periods as it is read), so its
peak memory is the step's: this process also holds the catalog and the naive loop's Python rows.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from consodam_pipeline.bench.common import (
    Report,
    every_period,
    measured,
    peak_rss_mb,
    pristine_catalog,
    repeated,
)
from consodam_pipeline.bench.frames import catalog_frames
from consodam_pipeline.derived.restrictions import desired_restrictions
from consodam_pipeline.derived.rights_matrix import asset_grants
from consodam_pipeline.derived.rights_reference import naive_grants

REPEATS = 3  # the matrix is built this many times and the median reported
MATRIX = "rights_matrix.parquet"  # what the step built, for the restriction plan and the comparison


def matrix_step(tables: str) -> dict[str, Any]:
    """What the asset does over every period, timed: read its columns, slice, build, check."""
    from consodam_pipeline.derived.rights_matrix import EDITION_INPUTS, VERSION_INPUTS, rights_matrix
    from consodam_pipeline.derived.rights_report import rights_checks

    editions, versions, read_s = every_period(tables, VERSION_INPUTS, EDITION_INPUTS)
    matrix, runs = repeated(lambda: rights_matrix(editions, versions), REPEATS)
    start = time.perf_counter()
    checks = rights_checks(matrix, editions, versions)
    checks_s = time.perf_counter() - start
    figures = {
        "read_s": read_s,
        "matrix_runs_s": runs,
        "checks_s": checks_s,
        "checks_passed": all(c.passed for c in checks if c.check_name != "assets_without_rights_source"),
        "rows": matrix.height,
        "peak_rss_mb": peak_rss_mb(),
    }
    matrix.write_parquet(f"{tables}/{MATRIX}")
    return figures


def run(works: int, seed: int, json_path: Path | None, workdir: Path) -> None:
    report = Report(f"consodam bench rights --works {works} (seed {seed})")
    catalog = pristine_catalog(works, seed, workdir, report)
    tables = workdir / f"rights-{works}-{seed}"
    tables.mkdir(parents=True, exist_ok=True)
    with measured() as load:
        editions, inventory = catalog_frames(catalog)
        editions.write_parquet(tables / "title_metadata_snapshot.parquet")
        inventory.write_parquet(tables / "dam_asset_inventory.parquet")
    report.row(
        "catalog → the ingest's Parquet tables",
        load.seconds,
        f"{editions.height} editions, {inventory.height} versions",
        load.peak_rss_mb,
    )
    # The matrix and the naive version do the same work (one grant per edition × version pair); the
    # per-asset union and the DAM state belong to the sync and are timed on their own.
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        step = pool.apply(matrix_step, (str(tables),))
    matrix_s = statistics.median(step["matrix_runs_s"])
    report.row("step: read and slice its inputs (own process)", step["read_s"], "", step["peak_rss_mb"])
    report.row(
        "matrix (vectorised, every period)",
        matrix_s,
        f"{step['rows']} edition × version rows; median of "
        + ", ".join(f"{s:.3f}" for s in step["matrix_runs_s"]),
    )
    report.row("step: the matrix's checks", step["checks_s"], "passed" if step["checks_passed"] else "FAILED")
    matrix = pl.read_parquet(tables / MATRIX)
    with measured() as sync_time:
        desired = desired_restrictions(asset_grants(matrix), datetime.now(UTC).date())
    report.row(
        "restriction plan: union per asset + desired DAM state",
        sync_time.seconds,
        f"{desired.height} asset versions",
        sync_time.peak_rss_mb,
    )
    with measured() as naive_time:
        naive = naive_grants(editions, inventory)
    report.row(
        "naive per-row Python, same rules", naive_time.seconds, f"{len(naive)} pairs", naive_time.peak_rss_mb
    )
    granted = int(matrix["visible"].sum())
    assert granted == sum(1 for g in naive.values() if g.visible), "the two implementations disagree"
    assert step["checks_passed"], "the matrix's blocking checks failed"
    report.figures.update(
        {
            "works": works,
            "editions": editions.height,
            "dam_asset_versions": inventory.height,
            "matrix_rows": matrix.height,
            "granted_rows": granted,
            "matrix_s": round(matrix_s, 3),
            "matrix_runs_s": [round(s, 3) for s in step["matrix_runs_s"]],
            "step_read_s": round(step["read_s"], 3),
            "checks_s": round(step["checks_s"], 3),
            "sync_plan_s": round(sync_time.seconds, 3),
            "naive_s": round(naive_time.seconds, 3),
            "speedup_vs_naive": round(naive_time.seconds / matrix_s, 1),
            "peak_rss_mb": round(step["peak_rss_mb"], 1),
            "matrix_peak_rss_mb": round(step["peak_rss_mb"], 1),
            "bench_process_peak_rss_mb": round(max(load.peak_rss_mb, naive_time.peak_rss_mb), 1),
        }
    )
    report.emit(json_path)
