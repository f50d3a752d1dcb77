"""`consodam bench workflow`: title packages over every edition, column-wise, against the readable rules
applied one edition at a time (the naive per-edition loop) in the same run.

The column-wise evaluation runs in a process of its own that reads its inputs from Parquet the way
`title_asset_packages` does (the inventory's package columns, sliced to the periods as they are read), so
its peak memory is the step's, not the benchmark's: this process also holds the catalog it generated and
the Python rows of the naive loop.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
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
from consodam_pipeline.derived.package_report import PACKAGE_INPUTS
from consodam_pipeline.derived.packages_reference import reference_packages
from consodam_pipeline.domain.packages import load_rules

REPEATS = 3  # the column-wise pass is timed this many times and the median reported
STATUSES = "package_statuses.parquet"  # what the step found, for the comparison with the naive loop


def packages_step(tables: str) -> dict[str, Any]:
    """What the asset does over every period, timed: read, slice, evaluate, milestones and summary."""
    from consodam_pipeline.derived.packages import edition_summary, evaluate_packages, with_milestones

    rules = load_rules()
    editions, versions, read_s = every_period(tables, PACKAGE_INPUTS)
    packages, runs = repeated(lambda: evaluate_packages(editions, versions, rules), REPEATS)
    start = time.perf_counter()
    summary = edition_summary(with_milestones(packages, rules))
    measured_step = {
        "read_s": read_s,
        "evaluate_runs_s": runs,
        "milestones_s": time.perf_counter() - start,
        "rows": packages.height,
        "complete": int((summary["met"] == summary["requirements"]).sum()),
        "peak_rss_mb": peak_rss_mb(),
    }
    packages.select("product_id", "requirement", "status").write_parquet(f"{tables}/{STATUSES}")
    return measured_step


def run(works: int, seed: int, json_path: Path | None, workdir: Path) -> None:
    report = Report(f"consodam bench workflow --works {works} (seed {seed})")
    catalog = pristine_catalog(works, seed, workdir, report)
    rules = load_rules()
    tables = workdir / f"workflow-{works}-{seed}"
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
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        step = pool.apply(packages_step, (str(tables),))
    packages_s = statistics.median(step["evaluate_runs_s"])
    report.row("step: read and slice its inputs (own process)", step["read_s"], "", step["peak_rss_mb"])
    report.row(
        "packages, column-wise (every edition × requirement)",
        packages_s,
        f"{step['rows']} rows, {step['complete']} complete; median of "
        + ", ".join(f"{s:.3f}" for s in step["evaluate_runs_s"]),
    )
    report.row("step: milestones and the per-edition summary", step["milestones_s"])
    with measured() as naive_time:
        naive = reference_packages(editions, inventory.select(PACKAGE_INPUTS), rules)
    report.row("naive per-edition Python, same rules", naive_time.seconds, f"{len(naive)} pairs")
    statuses = pl.read_parquet(tables / STATUSES)
    columnar = dict(
        zip(
            zip(statuses["product_id"], statuses["requirement"], strict=True), statuses["status"], strict=True
        )
    )
    disagree = sum(1 for key, evaluation in naive.items() if columnar.get(key) != evaluation.status)
    assert disagree == 0 and len(naive) == len(columnar), (
        f"the two implementations disagree on {disagree} pairs"
    )
    report.figures.update(
        {
            "works": works,
            "editions": editions.height,
            "dam_asset_versions": inventory.height,
            "package_rows": step["rows"],
            "complete_editions": step["complete"],
            "packages_s": round(packages_s, 3),
            "packages_runs_s": [round(s, 3) for s in step["evaluate_runs_s"]],
            "step_read_s": round(step["read_s"], 3),
            "milestones_summary_s": round(step["milestones_s"], 3),
            "naive_s": round(naive_time.seconds, 3),
            "speedup_vs_naive": round(naive_time.seconds / packages_s, 1),
            "peak_rss_mb": round(step["peak_rss_mb"], 1),
            "bench_process_peak_rss_mb": round(max(load.peak_rss_mb, naive_time.peak_rss_mb), 1),
        }
    )
    report.emit(json_path)
