"""`consodam bench audit`: the single-run backfill of every period, the ledger it builds, and the audit
queries for one ISBN (history, and as of a date) on SQLite or PostgreSQL."""

from __future__ import annotations

import multiprocessing
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import dagster as dg
import polars as pl
import sqlalchemy as sa

from consodam_pipeline.audit.answer import DAM_VERSION, EDITION, edition_audit
from consodam_pipeline.audit.report import ReportQuery, report_frame, to_csv, write_report
from consodam_pipeline.bench.common import Report, measured, peak_rss_mb, percentile, pristine_catalog
from consodam_pipeline.bench.frames import catalog_frames
from consodam_pipeline.clients.consonance import ConsonanceResource
from consodam_pipeline.clients.opentext_dam import OpenTextDamResource
from consodam_pipeline.store.access import reading_engine, store_setting
from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.store.pgcluster import PostgresCluster, find_pg_bin
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.store.schema import audit_ledger
from consodam_pipeline.store.tables import PolarsParquetIOManager, write_parquet

QUERIES = 300


def backfill(tables: str, store_url: str, keys: list[str] | None = None) -> dict[str, object]:
    from consodam_pipeline.defs.ingest.inventory import dam_asset_inventory
    from consodam_pipeline.defs.ingest.markers import edition_changes
    from consodam_pipeline.defs.ingest.titles import title_metadata_snapshot
    from consodam_pipeline.defs.links.approved_links import approved_version_links
    from consodam_pipeline.domain.periods import period_keys

    keys = keys or period_keys()
    result = dg.materialize(
        [title_metadata_snapshot, dam_asset_inventory, edition_changes, approved_version_links],
        selection=[approved_version_links],
        resources={
            "lineage": LineageStoreResource(url=store_url),
            "consonance": ConsonanceResource(),
            "dam": OpenTextDamResource(),
            "io_manager": PolarsParquetIOManager(base_path=tables),
        },
        tags={"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]},
    )
    events = result.get_asset_materialization_events()
    return {k: v.value for k, v in events[-1].materialization.metadata.items()}


STEP_RUNNER = """
import json, sys, time
from consodam_pipeline.bench.audit import backfill
from consodam_pipeline.bench.common import peak_rss_mb
keys = json.loads(sys.argv[3])
started = time.perf_counter()
meta = backfill(sys.argv[1], sys.argv[2], keys)
figures = {k: v for k, v in meta.items() if isinstance(v, int | float)}
print(json.dumps({"seconds": time.perf_counter() - started, "peak_mb": peak_rss_mb(), **figures}))
"""


def backfill_processes(tables: str, store_url: str, ranges: int = 1) -> dict[str, float]:
    """The backfill of every period in processes of its own, as a run's step runs (`ranges` concurrent
    ones over disjoint ranges of periods, as a cluster runs it with CONSODAM_BACKFILL_RANGE): wall time,
    the slowest process's time inside the step, its largest peak memory (VmHWM) and the metadata's counts
    summed."""
    import json

    from consodam_pipeline.domain.periods import period_keys

    keys = period_keys()
    size = -(-len(keys) // ranges)
    started = time.perf_counter()
    children = [
        subprocess.Popen(
            [sys.executable, "-c", STEP_RUNNER, tables, store_url, json.dumps(keys[i : i + size])],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for i in range(0, len(keys), size)
    ]
    outcomes = []
    for child in children:
        out, _ = child.communicate()
        if child.returncode != 0:
            raise SystemExit(f"a backfill process failed ({child.returncode})")
        outcomes.append(json.loads(out.strip().splitlines()[-1]))
    summed = {k: sum(o[k] for o in outcomes) for k in outcomes[0] if k not in ("seconds", "peak_mb")}
    return {
        **summed,
        "wall_s": time.perf_counter() - started,
        "peak_mb_per_process": max(o["peak_mb"] for o in outcomes),
        "slowest_s": max(o["seconds"] for o in outcomes),
    }


def record_snapshots(store: LineageStore, editions: pl.DataFrame, inventory: pl.DataFrame) -> None:
    """The title and DAM records in the store's history as the ingest leaves them, so the full answer
    reads tables of their real size."""
    observed = datetime(2000, 1, 1, tzinfo=UTC)
    for entity, frame, key in ((EDITION, editions, "product_id"), (DAM_VERSION, inventory, "asset_id")):
        records = frame.select(
            pl.col(key).cast(pl.String).alias("record_key"),
            pl.struct(pl.all()).struct.json_encode().alias("payload"),
        ).with_columns(pl.col("payload").hash().cast(pl.String).alias("content_hash"))
        with store.engine.begin() as conn:
            store.history.apply_snapshot(
                conn, entity, records, observed_at=observed, complete=True, subjects_in_payload=True
            )


def settle(store: LineageStore) -> None:
    """What the database does by itself soon after millions of rows were written (a checkpoint, fresh
    planner statistics), done now: the answers are timed as a store in steady state gives them, not while
    the server is still writing the backfill out."""
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if store.engine.dialect.name == "postgresql":
            conn.exec_driver_sql("VACUUM ANALYZE")
            conn.exec_driver_sql("CHECKPOINT")
        else:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def cli_times(store_url: str, isbns: list[str], runs: int = 10) -> tuple[list[float], list[float]]:
    """Wall time of `consodam audit ISBN --json`, process start to output, and of a bare interpreter."""
    command: list[float] = []
    bare: list[float] = []
    for isbn in isbns[:runs]:
        for samples, args in (
            (command, ["-m", "consodam_pipeline.cli", "audit", isbn, "--json", "--store-url", store_url]),
            (bare, ["-c", "pass"]),
        ):
            start = time.perf_counter()
            done = subprocess.run([sys.executable, *args], capture_output=True, check=False)
            samples.append(time.perf_counter() - start)
            if done.returncode not in (0, 3):
                raise SystemExit(done.stderr.decode()[-500:])
    return command, bare


def month_report(store: LineageStore) -> tuple[float, int, ReportQuery]:
    """The compliance report (CSV) for the last 31 days of changes in the ledger."""
    with store.engine.connect() as conn:
        newest = conn.execute(sa.select(sa.func.max(audit_ledger.c.occurred_at))).scalar_one()
    end = newest.replace(tzinfo=UTC)
    query = ReportQuery(end - timedelta(days=31), end)
    start = time.perf_counter()
    text = to_csv(report_frame(store.engine, query))
    return time.perf_counter() - start, text.count("\n") - 1, query


def day_report(store: LineageStore, out: Path) -> dict[str, float | int | str]:
    """The HTML report of the busiest day of the last month: how long it takes to write, its size, and how
    long chromium takes to load its first page (the page a reviewer opens)."""
    with store.engine.connect() as conn:
        newest = conn.execute(sa.select(sa.func.max(audit_ledger.c.occurred_at))).scalar_one()
        moments = conn.execute(
            sa.select(audit_ledger.c.occurred_at).where(
                audit_ledger.c.occurred_at >= newest - timedelta(days=31)
            )
        ).scalars()
        days = pl.Series("day", [m.date() for m in moments]).value_counts(sort=True)
    day = days["day"][0]
    start = datetime.combine(day, datetime.min.time(), UTC)
    query = ReportQuery(start, start + timedelta(days=1) - timedelta(microseconds=1))
    began = time.perf_counter()
    pages = write_report(report_frame(store.engine, query), "html", out, query, "the bench store")
    written = time.perf_counter() - began
    figures: dict[str, float | int | str] = {
        "report_day": day.isoformat(),
        "report_day_changes": int(days["count"][0]),
        "report_day_html_s": round(written, 2),
        "report_day_html_pages": len(pages),
        "report_day_html_mb": round(sum(p.stat().st_size for p in pages) / 1e6, 2),
        "report_day_first_page_mb": round(pages[0].stat().st_size / 1e6, 2),
    }
    load = chromium_load_ms(pages[0])
    if load is not None:
        figures["report_day_load_s"] = round(load / 1000, 2)
    return figures


def report_step(store_url: str, out: str) -> dict[str, Any]:
    """Both reports in a process of their own, as `consodam audit report` makes them: their figures and the
    process's peak memory (chromium, loading the page, is a process of its own)."""
    store = LineageStoreResource(url=store_url).store()
    month_s, month_rows, month = month_report(store)
    day = day_report(store, Path(out))
    return {
        "month_s": month_s,
        "month_rows": month_rows,
        "month": f"{month.start:%Y-%m-%d}…{month.end:%Y-%m-%d}",
        "day": day,
        "peak_rss_mb": peak_rss_mb(),
    }


def chromium_load_ms(page_file: Path) -> float | None:
    """Milliseconds from navigation to the load event of the page in headless chromium (median of 3), or None
    without chromium, or when it cannot start (said in one line: the other figures stand)."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        return None
    from playwright.sync_api import Error as BrowserError

    try:
        return _median_load_ms(browser, page_file)
    except BrowserError as exc:
        reason = str(exc).strip().splitlines()[0][:200]
        click.echo(f"chromium could not load the report ({reason}); its load time is left out", err=True)
        return None


def _median_load_ms(browser: str, page_file: Path) -> float:
    from playwright.sync_api import sync_playwright

    samples = []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=browser, args=["--no-sandbox", "--disable-gpu"])
        try:
            for _ in range(3):
                page = chromium.new_page(viewport={"width": 1280, "height": 900})
                page.goto(page_file.as_uri(), wait_until="load")
                samples.append(
                    float(page.evaluate("performance.getEntriesByType('navigation')[0].loadEventEnd"))
                )
                page.close()
        finally:
            chromium.close()
    return statistics.median(samples)


def query_times(engine: sa.Engine, isbns: list[str], as_of: bool, seed: int) -> list[float]:
    rng = random.Random(seed)
    samples = []
    for isbn in isbns:
        moment = (
            datetime(2000, 1, 1, tzinfo=UTC) + timedelta(days=rng.randint(0, 27 * 365)) if as_of else None
        )
        start = time.perf_counter()
        edition_audit(engine, isbn, moment)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def run(
    works: int, seed: int, json_path: Path | None, workdir: Path, postgres: bool, ranges: int = 0
) -> None:
    report = Report(
        f"consodam bench audit --works {works} (seed {seed}){' on PostgreSQL' if postgres else ''}"
    )
    catalog = pristine_catalog(works, seed, workdir, report)
    home = Path(tempfile.mkdtemp(prefix="consodam-bench-audit-"))
    with ExitStack() as stack:
        stack.callback(shutil.rmtree, home, ignore_errors=True)  # gigabytes at 100k, also when a step fails
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
        first = backfill_processes(tables, store_url)
        store = LineageStoreResource(url=store_url).store()
        rows = store.ledger.size()
        report.row(
            "backfill of every period, one run (its step)",
            first["slowest_s"],
            f"{first['dagster/row_count']:,.0f} links, {rows:,} ledger rows",
            first["peak_mb_per_process"],
        )
        if ranges > 1:
            split_url = cluster.create_database("ranges") if postgres else f"sqlite:///{home / 'ranges.db'}"
            split = backfill_processes(tables, split_url, ranges)
            split_rows = LineageStoreResource(url=split_url).store().ledger.size()
            report.row(
                f"the same backfill as {ranges} concurrent ranges",
                split["wall_s"],
                f"{split_rows:,} ledger rows ({'the same' if split_rows == rows else 'DIFFERENT'}); slowest "
                f"range {split['slowest_s']:.0f} s",
                split["peak_mb_per_process"],
            )
            report.figures.update(
                {
                    "ranges": ranges,
                    "ranges_backfill_s": round(split["wall_s"], 2),
                    "ranges_peak_mb_per_process": round(split["peak_mb_per_process"], 1),
                    "ranges_ledger_rows_equal": split_rows == rows,
                }
            )
        again = backfill_processes(tables, store_url)
        report.row(
            "the same backfill again (its step)",
            again["slowest_s"],
            f"{again['events_new_in_ledger']:.0f} new ledger rows; {again['periods_derived']:.0f} of "
            f"{again['partitions']:.0f} periods derived (the others' inputs had not changed)",
            again["peak_mb_per_process"],
        )
        with measured() as recorded:
            record_snapshots(store, editions, inventory)
        report.row(
            "title and DAM records into the store's history",
            recorded.seconds,
            f"{editions.height:,} editions, {inventory.height:,} versions",
        )
        with measured() as settled:
            settle(store)
        report.row("the store settles (checkpoint, statistics)", settled.seconds)
        isbns = random.Random(seed).sample(editions["isbn13"].to_list(), min(QUERIES, editions.height))
        reader = reading_engine(store_setting(store_url))  # the engine `consodam audit` answers with
        stack.callback(reader.dispose)
        history = query_times(reader, isbns, as_of=False, seed=seed)
        as_of = query_times(reader, isbns, as_of=True, seed=seed)
        for name, samples in (
            ("full audit answer, now", history),
            ("full audit answer, as of a moment", as_of),
        ):
            median, p99 = statistics.median(samples), percentile(samples, 0.99)
            detail = f"median {median:.2f} ms, p99 {p99:.2f} ms over {len(samples)} ISBNs"
            report.row(name, median / 1000, detail)
        command, bare = cli_times(store_url, isbns)
        cli_median, bare_median = statistics.median(command), statistics.median(bare)
        report.row(
            "consodam audit ISBN --json, process start to output",
            cli_median,
            f"max {max(command):.2f} s; {cli_median / bare_median:.1f}× a bare interpreter "
            f"({bare_median * 1000:.0f} ms)",
        )
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            reports = pool.apply(report_step, (store_url, str(home / "day.html")))
        month_s, month_rows = float(reports["month_s"]), int(reports["month_rows"])
        report.row(
            "compliance report, one month (CSV)",
            month_s,
            f"{month_rows:,} changes {reports['month']}; both reports' process peaks at "
            f"{reports['peak_rss_mb']:.0f} MB",
            float(reports["peak_rss_mb"]),
        )
        day: dict[str, float | int | str] = reports["day"]
        loaded = (
            f"; chromium loads the first page in {day['report_day_load_s']} s"
            if "report_day_load_s" in day
            else ""
        )
        report.row(
            "compliance report, the busiest day (HTML)",
            float(day["report_day_html_s"]),
            f"{day['report_day_changes']:,} changes on {day['report_day']}: {day['report_day_html_mb']} MB in "
            f"{day['report_day_html_pages']} page(s), the first {day['report_day_first_page_mb']} MB{loaded}",
        )
        report.figures.update(day)
        report.figures.update(
            {
                "works": works,
                "editions": editions.height,
                "dam_asset_versions": inventory.height,
                "backend": "postgresql" if postgres else "sqlite",
                "ledger_rows": rows,
                "backfill_all_periods_s": round(first["slowest_s"], 2),
                "backfill_step_peak_mb": round(first["peak_mb_per_process"], 1),
                "rebackfill_s": round(again["slowest_s"], 2),
                "rebackfill_step_peak_mb": round(again["peak_mb_per_process"], 1),
                "rebackfill_new_ledger_rows": int(again["events_new_in_ledger"]),
                "rebackfill_periods_derived": int(again["periods_derived"]),
                "audit_query_median_ms": round(statistics.median(history), 2),
                "audit_query_p99_ms": round(percentile(history, 0.99), 2),
                "as_of_query_median_ms": round(statistics.median(as_of), 2),
                "as_of_query_p99_ms": round(percentile(as_of, 0.99), 2),
                "cli_audit_median_s": round(cli_median, 3),
                "cli_audit_max_s": round(max(command), 3),
                "bare_interpreter_median_s": round(bare_median, 3),
                "report_month_s": round(month_s, 2),
                "report_month_rows": month_rows,
                "report_step_peak_mb": round(float(reports["peak_rss_mb"]), 1),
            }
        )
    report.emit(json_path)
