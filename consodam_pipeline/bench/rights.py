"""`consodam bench rights`: the vectorised rights matrix against a naive per-row implementation."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from consodam_pipeline.bench.common import Report, measured, pristine_catalog
from consodam_pipeline.bench.frames import catalog_frames
from consodam_pipeline.derived.restrictions import desired_restrictions
from consodam_pipeline.derived.rights_matrix import asset_grants, rights_matrix
from consodam_pipeline.derived.rights_reference import naive_grants


def run(works: int, seed: int, json_path: Path | None, workdir: Path) -> None:
    report = Report(f"consodam bench rights --works {works} (seed {seed})")
    catalog = pristine_catalog(works, seed, workdir, report)
    with measured() as load:
        editions, inventory = catalog_frames(catalog)
    report.row(
        "load editions and inventory frames",
        load.seconds,
        f"{editions.height} editions, {inventory.height} versions",
        load.peak_rss_mb,
    )
    # The matrix and the naive version do the same work (one grant per edition × version pair); the
    # per-asset union and the DAM state belong to the sync and are timed on their own.
    with measured() as matrix_time:
        matrix = rights_matrix(editions, inventory)
    report.row(
        "matrix (vectorised, every period)",
        matrix_time.seconds,
        f"{matrix.height} edition × version rows",
        matrix_time.peak_rss_mb,
    )
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
    report.figures.update(
        {
            "works": works,
            "editions": editions.height,
            "dam_asset_versions": inventory.height,
            "matrix_rows": matrix.height,
            "granted_rows": granted,
            "matrix_s": round(matrix_time.seconds, 3),
            "sync_plan_s": round(sync_time.seconds, 3),
            "naive_s": round(naive_time.seconds, 3),
            "speedup_vs_naive": round(naive_time.seconds / matrix_time.seconds, 1),
            "peak_rss_mb": round(
                max(matrix_time.peak_rss_mb, sync_time.peak_rss_mb, naive_time.peak_rss_mb), 1
            ),
            "matrix_peak_rss_mb": round(matrix_time.peak_rss_mb, 1),
        }
    )
    report.emit(json_path)
