"""`consodam bench workflow`: title packages over every edition, column-wise, against the readable rules
applied one edition at a time (the naive per-edition loop) in the same run."""

from __future__ import annotations

from pathlib import Path

from consodam_pipeline.bench.common import Report, measured, pristine_catalog
from consodam_pipeline.bench.frames import catalog_frames
from consodam_pipeline.defs.workflow.assets import PACKAGE_INPUTS
from consodam_pipeline.defs.workflow.packages import edition_summary, evaluate_packages, with_milestones
from consodam_pipeline.defs.workflow.verify import reference_packages
from consodam_pipeline.domain.packages import load_rules


def run(works: int, seed: int, json_path: Path | None, workdir: Path) -> None:
    report = Report(f"consodam bench workflow --works {works} (seed {seed})")
    catalog = pristine_catalog(works, seed, workdir, report)
    rules = load_rules()
    with measured() as load:
        editions, full = catalog_frames(catalog)
        inventory = full.select(PACKAGE_INPUTS)  # what the asset reads from its input file
        del full
    report.row(
        "load editions and inventory frames",
        load.seconds,
        f"{editions.height} editions, {inventory.height} versions",
        load.peak_rss_mb,
    )
    with measured() as packages_time:
        packages = with_milestones(evaluate_packages(editions, inventory, rules), rules)
        summary = edition_summary(packages)
    report.row(
        "packages, column-wise (every edition × requirement)",
        packages_time.seconds,
        f"{packages.height} rows, {int((summary['met'] == summary['requirements']).sum())} complete",
        packages_time.peak_rss_mb,
    )
    with measured() as naive_time:
        naive = reference_packages(editions, inventory, rules)
    report.row(
        "naive per-edition Python, same rules",
        naive_time.seconds,
        f"{len(naive)} pairs",
        naive_time.peak_rss_mb,
    )
    statuses = dict(
        zip(
            zip(packages["product_id"], packages["requirement"], strict=True), packages["status"], strict=True
        )
    )
    disagree = sum(1 for key, evaluation in naive.items() if statuses.get(key) != evaluation.status)
    assert disagree == 0 and len(naive) == packages.height, (
        f"the two implementations disagree on {disagree} pairs"
    )
    report.figures.update(
        {
            "works": works,
            "editions": editions.height,
            "dam_asset_versions": inventory.height,
            "package_rows": packages.height,
            "complete_editions": int((summary["met"] == summary["requirements"]).sum()),
            "packages_s": round(packages_time.seconds, 3),
            "naive_s": round(naive_time.seconds, 3),
            "speedup_vs_naive": round(naive_time.seconds / packages_time.seconds, 1),
            "peak_rss_mb": round(max(load.peak_rss_mb, packages_time.peak_rss_mb, naive_time.peak_rss_mb), 1),
            "packages_peak_rss_mb": round(packages_time.peak_rss_mb, 1),
        }
    )
    report.emit(json_path)
