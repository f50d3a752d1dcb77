"""`consodam bench audit`: the single-run backfill of every period, the ledger it builds, and the audit
queries for one ISBN (history, and as of a date) on SQLite or PostgreSQL."""

from __future__ import annotations

import random
import shutil
import statistics
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

from consodam_pipeline.audit import edition_audit
from consodam_pipeline.bench.common import Report, measured, pristine_catalog
from consodam_pipeline.bench.frames import catalog_frames
from consodam_pipeline.clients.consonance import ConsonanceResource
from consodam_pipeline.clients.opentext_dam import OpenTextDamResource
from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.store.pgcluster import PostgresCluster, find_pg_bin
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.store.tables import PolarsParquetIOManager, write_parquet

QUERIES = 300


def backfill(tables: str, store_url: str) -> dict[str, object]:
    from consodam_pipeline.defs.consonance.assets import title_metadata_snapshot
    from consodam_pipeline.defs.dam.assets import dam_asset_inventory
    from consodam_pipeline.defs.editions import edition_changes, period_keys
    from consodam_pipeline.defs.links.assets import approved_version_links

    keys = period_keys()
    result = dg.materialize(
        [title_metadata_snapshot, dam_asset_inventory, edition_changes, approved_version_links],
        selection=[approved_version_links],
        resources={"lineage": LineageStoreResource(url=store_url), "consonance": ConsonanceResource(),
                   "dam": OpenTextDamResource(), "io_manager": PolarsParquetIOManager(base_path=tables)},
        tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]},
    )  # fmt: skip
    events = result.get_asset_materialization_events()
    return {k: v.value for k, v in events[-1].materialization.metadata.items()}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def query_times(store: LineageStore, isbns: list[str], as_of: bool, seed: int) -> list[float]:
    rng = random.Random(seed)
    samples = []
    for isbn in isbns:
        moment = (
            datetime(2000, 1, 1, tzinfo=UTC) + timedelta(days=rng.randint(0, 27 * 365)) if as_of else None
        )
        start = time.perf_counter()
        edition_audit(store, isbn, moment)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def run(works: int, seed: int, json_path: Path | None, workdir: Path, postgres: bool) -> None:
    report = Report(
        f"consodam bench audit --works {works} (seed {seed}){' on PostgreSQL' if postgres else ''}"
    )
    catalog = pristine_catalog(works, seed, workdir, report)
    home = Path(tempfile.mkdtemp(prefix="consodam-bench-audit-"))
    with ExitStack() as stack:
        if postgres:
            bin_dir = find_pg_bin()
            if bin_dir is None:
                raise SystemExit(
                    "--postgres needs PostgreSQL's initdb/pg_ctl on PATH or in /usr/lib/postgresql"
                )
            cluster = PostgresCluster(bin_dir)
            store_url = cluster.start()
            stack.callback(cluster.stop)
        else:
            store_url = f"sqlite:///{home / 'lineage.db'}"
        editions, inventory = catalog_frames(catalog)
        tables = str(home / "tables")
        write_parquet(editions, f"{tables}/title_metadata_snapshot.parquet")
        write_parquet(inventory, f"{tables}/dam_asset_inventory.parquet")
        with measured() as first:
            meta = backfill(tables, store_url)
        store = LineageStoreResource(url=store_url).store()
        rows = store.ledger_size()
        report.row("backfill of every period, one run", first.seconds,
                   f"{meta['dagster/row_count']} links, {rows:,} ledger rows", first.peak_rss_mb)  # fmt: skip
        with measured() as second:
            again = backfill(tables, store_url)
        report.row(
            "the same backfill again", second.seconds, f"{again['events_new_in_ledger']} new ledger rows"
        )
        isbns = random.Random(seed).sample(editions["isbn13"].to_list(), min(QUERIES, editions.height))
        history = query_times(store, isbns, as_of=False, seed=seed)
        as_of = query_times(store, isbns, as_of=True, seed=seed)
        for name, samples in (("audit query (full history of one ISBN)", history), ("as-of query", as_of)):
            median, p99 = statistics.median(samples), percentile(samples, 0.99)
            detail = f"median {median:.2f} ms, p99 {p99:.2f} ms over {len(samples)} ISBNs"
            report.row(name, median / 1000, detail)
        report.figures.update({
            "works": works, "editions": editions.height, "dam_asset_versions": inventory.height,
            "backend": "postgresql" if postgres else "sqlite", "ledger_rows": rows,
            "backfill_all_periods_s": round(first.seconds, 2), "rebackfill_s": round(second.seconds, 2),
            "rebackfill_new_ledger_rows": again["events_new_in_ledger"],
            "audit_query_median_ms": round(statistics.median(history), 2),
            "audit_query_p99_ms": round(percentile(history, 0.99), 2),
            "as_of_query_median_ms": round(statistics.median(as_of), 2),
            "as_of_query_p99_ms": round(percentile(as_of, 0.99), 2),
            "peak_rss_mb": round(first.peak_rss_mb, 1),
        })  # fmt: skip
    shutil.rmtree(home, ignore_errors=True)
    report.emit(json_path)
