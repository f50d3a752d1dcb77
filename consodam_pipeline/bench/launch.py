"""`consodam bench launch`: planning the launch collections and rendering every title sheet in the window,
column-wise, against the readable per-edition plan in the same run. The inputs (links, rights matrix,
packages) are derived from the catalog first and timed on their own."""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from datetime import date
from pathlib import Path
from typing import Any

import polars as pl

from consodam_pipeline.bench.common import Report, measured, peak_rss_mb, pristine_catalog
from consodam_pipeline.bench.frames import catalog_frames
from consodam_pipeline.derived.launch import LAUNCH_INPUTS
from consodam_pipeline.derived.launch_plan import launch_plan, title_sheets
from consodam_pipeline.derived.launch_reference import reference_members
from consodam_pipeline.derived.link_history import link_history_chunks
from consodam_pipeline.derived.package_report import PACKAGE_INPUTS
from consodam_pipeline.derived.packages import evaluate_packages
from consodam_pipeline.derived.rights_matrix import rights_matrix
from consodam_pipeline.domain.packages import load_rules
from consodam_pipeline.sync.dam_launch import wanted_members


def catalog_day(catalog: Path) -> date:
    """The catalog's own today (its anchor), so the window holds the same editions whenever it is run."""
    with sqlite3.connect(catalog / "consonance.sqlite") as conn:
        (anchor,) = conn.execute("SELECT value FROM meta WHERE key = 'anchor'").fetchone()
    return date.fromisoformat(anchor)


def launch_step(tables: str, today: date) -> dict[str, Any]:
    """What `launch_collections` computes over every period before it writes, in a process of its own reading
    its inputs from Parquet as the asset does (the matrix and packages scanned for the editions in the
    window): the plan and every title sheet. Its peak memory is the step's."""
    from consodam_pipeline.derived.launch import plan_launch
    from consodam_pipeline.domain.periods import period_keys

    start = time.perf_counter()
    launch = plan_launch(
        pl.read_parquet(f"{tables}/title_metadata_snapshot.parquet"),
        pl.read_parquet(f"{tables}/approved_version_links.parquet"),
        pl.scan_parquet(f"{tables}/rights_matrix.parquet"),
        pl.scan_parquet(f"{tables}/title_asset_packages.parquet"),
        pl.scan_parquet(f"{tables}/dam_asset_inventory.parquet"),
        period_keys(),
        load_rules().launch,
        "https://dam.example",
        today,
    )
    return {
        "seconds": time.perf_counter() - start,
        "sheets": len(launch.sheets.sheets),
        "peak_rss_mb": peak_rss_mb(),
    }


def run(works: int, seed: int, json_path: Path | None, workdir: Path) -> None:
    report = Report(f"consodam bench launch --works {works} (seed {seed})")
    catalog = pristine_catalog(works, seed, workdir, report)
    rules, today = load_rules(), catalog_day(catalog)
    with measured() as inputs:
        editions, full = catalog_frames(catalog)
        links = pl.concat(
            [part.current for part in link_history_chunks(editions, full, None, with_events=False)]
        )
        matrix = rights_matrix(editions, full)
        versions = full.select(sorted(set(LAUNCH_INPUTS) | set(PACKAGE_INPUTS)))
        del full
        packages = evaluate_packages(editions, versions, rules)
    report.row(
        "inputs: editions, links, rights matrix, packages",
        inputs.seconds,
        f"{editions.height} editions, {links.height} links, {matrix.height} grants",
        inputs.peak_rss_mb,
    )
    tables = workdir / f"launch-{works}-{seed}"
    tables.mkdir(parents=True, exist_ok=True)
    written = {
        "title_metadata_snapshot": editions,
        "approved_version_links": links,
        "rights_matrix": matrix,
        "title_asset_packages": packages,
        "dam_asset_inventory": versions,
    }
    for name, frame in written.items():
        frame.write_parquet(tables / f"{name}.parquet")
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        step = pool.apply(launch_step, (str(tables), today))
    report.row(
        "step: plan and title sheets, inputs read as the asset reads them (own process)",
        step["seconds"],
        f"{step['sheets']} sheets",
        step["peak_rss_mb"],
    )
    with measured() as planning:
        plan = launch_plan(editions, links, matrix, packages, rules.launch, today)
        wanted = wanted_members(plan.launching, plan.cleared, {})
    report.row(
        "launch plan, column-wise (window, rights at publication, packages)",
        planning.seconds,
        f"{plan.launching.height} editions, {len(wanted)} members, {plan.launching['collection'].n_unique()} "
        "collections",
        planning.peak_rss_mb,
    )
    with measured() as rendering:
        sheets = title_sheets(plan, versions, lambda a: f"https://dam.example/otmmapi/v6/assets/{a}/contents")
    report.row(
        "title sheets rendered (ONIX 3.0)", rendering.seconds, f"{len(sheets)} sheets", rendering.peak_rss_mb
    )
    with measured() as naive:
        reference = reference_members(editions, links, matrix, rules.launch, today)
    report.row(
        "naive per-edition Python, same rules", naive.seconds, f"{len(reference)} members", naive.peak_rss_mb
    )
    assert reference == set(wanted), f"the two plans disagree on {len(reference ^ set(wanted))} members"
    assert step["sheets"] == len(sheets), "the step planned other editions than the plan timed here"
    report.figures.update(
        {
            "works": works,
            "editions": editions.height,
            "editions_launching": plan.launching.height,
            "collections": plan.launching["collection"].n_unique(),
            "members": len(wanted),
            "launch_plan_s": round(planning.seconds, 3),
            "naive_plan_s": round(naive.seconds, 3),
            "speedup_vs_naive": round(naive.seconds / max(planning.seconds, 1e-6), 1),
            "title_sheets": len(sheets),
            "title_sheets_s": round(rendering.seconds, 3),
            "title_sheets_per_s": round(len(sheets) / max(rendering.seconds, 1e-6)),
            "peak_rss_mb": round(max(inputs.peak_rss_mb, planning.peak_rss_mb, rendering.peak_rss_mb), 1),
            "launch_peak_rss_mb": round(max(planning.peak_rss_mb, rendering.peak_rss_mb), 1),
            "step_peak_rss_mb": round(step["peak_rss_mb"], 1),
            "step_s": round(step["seconds"], 3),
        }
    )
    report.emit(json_path)
