"""`consodam bench ingest`: transfer floor (before and after) vs. full ingest vs. incremental ingest vs. one
sensor tick."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import httpx

from consodam_pipeline.bench.common import Measure, Report, bench_sandbox, measured, shipped_instance_class
from consodam_pipeline.clients.consonance import PRODUCT_FIELDS, ConsonanceResource
from consodam_pipeline.clients.opentext_dam import OpenTextDamResource
from consodam_pipeline.sandbox.process import SandboxProcess
from consodam_pipeline.store.engine import store_url
from consodam_pipeline.store.resource import forget_engine


@dataclass
class Floors:
    """Seconds to download every page the ingest downloads (same sizes and concurrency), without reading them."""

    consonance_graphql_s: float
    consonance_rest_s: float
    dam_s: float
    pages: int

    @property
    def transfer_s(self) -> float:
        """What the ingest itself downloads: Consonance over GraphQL, then the DAM."""
        return self.consonance_graphql_s + self.dam_s


def _timed(download: Callable[[], int]) -> tuple[float, int]:
    start = time.perf_counter()
    pages = download()
    return time.perf_counter() - start, pages


def consonance_graphql_pages(consonance: ConsonanceResource) -> int:
    """consodam's own selection, keyset-paged as the client pages it."""
    query = (
        "query Products($search: ProductSearchAttributes, $limit: Int) {"
        f" products(productSearch: $search, limit: $limit) {{ {PRODUCT_FIELDS} }} }}"
    )
    headers = {"Authorization": f"Bearer {consonance.api_key}"}
    pages, after = 0, 0
    with httpx.Client(base_url=consonance.url, timeout=60) as client:
        while True:  # sandbox ids are dense, so the next `after` is known without parsing the page
            variables = {"search": {"after": after}, "limit": consonance.page_size}
            body = client.post("/graphql", headers=headers, json={"query": query, "variables": variables})
            pages += 1
            after += consonance.page_size
            if body.content.count(b'"fullTitle"') < consonance.page_size:
                return pages


def consonance_rest_pages(consonance: ConsonanceResource) -> int:
    """REST v4's products, page by page: what a generic REST loader reads."""
    headers = {"Authorization": f"Token token={consonance.api_key}"}
    with httpx.Client(base_url=consonance.url, timeout=60) as client:
        page, total = 1, 1
        while page <= total:
            params = {"page": page, "per_page": consonance.page_size}
            body = client.get("/api/v4/products.json", headers=headers, params=params).content
            if page == 1:
                total = int(re.search(rb'"total_pages":\s*(\d+)', body).group(1))  # type: ignore[union-attr]
            page += 1
        return total


def dam_pages(dam: OpenTextDamResource) -> int:
    with dam.client() as dam_client:
        total = dam_client.assets_page(0, all_versions=True).assets_resource.total_number_of_items
        token = dam_client.auth_headers()
    with httpx.Client(base_url=dam.url, timeout=60) as http, ThreadPoolExecutor(max_workers=2) as pool:

        def fetch(offset: int) -> int:
            params: dict[str, str | int] = {
                "after": offset,
                "limit": dam.page_size,
                "load_type": "metadata",
                "versions": "all",
            }
            return len(http.get("/otmmapi/v6/assets", params=params, headers=token).content)

        return len(list(pool.map(fetch, range(0, total, dam.page_size))))


def transfer_floors(consonance: ConsonanceResource, dam: OpenTextDamResource) -> Floors:
    graphql_s, graphql_pages = _timed(lambda: consonance_graphql_pages(consonance))
    rest_s, _ = _timed(lambda: consonance_rest_pages(consonance))
    dam_s, pages = _timed(lambda: dam_pages(dam))
    return Floors(graphql_s, rest_s, dam_s, graphql_pages + pages)


def measured_floors(
    report: Report, label: str, records: int, consonance: ConsonanceResource, dam: OpenTextDamResource
) -> tuple[Floors, Measure]:
    """The transfer floor, timed with this process's peak, as a row of the report."""
    with measured() as floor:
        floors = transfer_floors(consonance, dam)
    detail = f"{floors.pages} pages, {records / floors.transfer_s:,.0f} records/s"
    report.row(label, floors.transfer_s, detail, floor.peak_rss_mb)
    return floors, floor


def materialize_ingest(instance: dg.DagsterInstance, home: Path, **config: Any) -> dict[str, dict[str, Any]]:
    from consodam_pipeline.definitions import defs

    job = defs().resolve_job_def("consodam_sync")
    result = job.execute_in_process(instance=instance)
    assert result.success
    out: dict[str, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        if materialization.partition is not None:
            continue  # the edition_changes markers
        out[materialization.asset_key.to_user_string()] = {
            k: v.value for k, v in materialization.metadata.items() if isinstance(v.value, int | float | str)
        }
    return out


@dataclass
class FullIngest:
    """One full ingest on a fresh store, between the floor before it and the floor after it."""

    measure: Measure
    floor_before: Floors
    floor_after: Floors
    metadata: dict[str, dict[str, Any]]

    @property
    def floor_s(self) -> float:
        # The machine's speed drifts over minutes: the floor on either side of the ingest, averaged, is
        # what the ingest's own transfer would have cost while it ran.
        return (self.floor_before.transfer_s + self.floor_after.transfer_s) / 2

    @property
    def ratio(self) -> float:
        return self.measure.seconds / self.floor_s


def median_run(runs: list[FullIngest]) -> FullIngest:
    """The run whose ratio is the median (the lower of the middle two for an even count): a real run,
    so its seconds, floors and ratio agree with each other."""
    return sorted(runs, key=lambda run: run.ratio)[(len(runs) - 1) // 2]


def run(works: int, seed: int, json_path: Path | None, workdir: Path, repeats: int = 1) -> None:
    report = Report(f"consodam bench ingest --works {works} (seed {seed}, {repeats} full ingest(s))")
    sandbox = bench_sandbox(works, seed, workdir, report)
    saved = dict(os.environ)
    instance_of_run = contextlib.ExitStack()  # the current run's instance, store and home
    with sandbox:
        os.environ.update(sandbox.env)
        for name in ("CONSODAM_STORE_URL", "CONSODAM_TABLES_PATH"):
            os.environ.pop(name, None)
        try:
            consonance = ConsonanceResource(url=sandbox.consonance_url)
            dam = OpenTextDamResource(url=sandbox.dam_url)
            stats = sandbox.admin("dam", "GET", "/_sandbox/stats")["counts"]
            products = sandbox.admin("consonance", "GET", "/_sandbox/stats")["counts"]["products"]
            records = products + stats["asset_versions"]
            floors, floor = measured_floors(
                report, "(a) transfer floor: download every page", records, consonance, dam
            )
            for name, seconds in (
                ("    Consonance GraphQL (consodam's selection)", floors.consonance_graphql_s),
                ("    Consonance REST v4 (for comparison)", floors.consonance_rest_s),
                ("    DAM assets, every version", floors.dam_s),
            ):
                per_record = stats["asset_versions"] if "DAM" in name else products
                report.row(name, seconds, f"{per_record / seconds:,.0f} records/s")
            runs: list[FullIngest] = []
            floor_measures = [floor]
            for attempt in range(1, repeats + 1):
                instance_of_run.close()  # only the last run's store is kept, for the incremental ingest
                home = fresh_home(instance_of_run)
                instance = instance_of_run.enter_context(
                    dg.instance_for_test(overrides=shipped_instance_class())
                )
                with measured() as full:
                    first = materialize_ingest(instance, home)
                floors_after, floor_again = measured_floors(
                    report, f"(a) transfer floor again, after full ingest {attempt}", records, consonance, dam
                )
                runs.append(FullIngest(full, floors, floors_after, first))
                floor_measures.append(floor_again)
                floors = floors_after
                report.row(
                    f"(b) full ingest (both systems), run {attempt}",
                    full.seconds,
                    f"{records / full.seconds:,.0f} records/s, {runs[-1].ratio:.3f}x the floors' mean, "
                    f"{full.cpu_s:.1f} s CPU",
                    full.peak_rss_mb,
                )
            incremental, touched = incremental_ingest(instance, home, sandbox, products, stats["assets"])
            report.row(
                "(c) incremental ingest after 0.1% changed",
                incremental.seconds,
                f"{touched} records added/changed",
                incremental.peak_rss_mb,
            )
            tick_s = sensor_ticks(instance, sandbox, report)
            report.figures.update(
                {"works": works, "editions": products, "dam_asset_versions": stats["asset_versions"]}
            )
            report.figures.update(full_ingest_figures(runs, incremental, floor_measures, records))
            report.figures["sensor_tick_s"] = round(tick_s, 3)
        finally:
            instance_of_run.close()  # before the environment is restored (the instance puts back DAGSTER_HOME)
            os.environ.clear()
            os.environ.update(saved)
    report.emit(json_path)


def full_ingest_figures(
    runs: list[FullIngest], incremental: Measure, floor_measures: list[Measure], records: int
) -> dict[str, Any]:
    """The median run's figures (its seconds, floors and ratio), every run's ratio and records added, and
    the incremental ingest against the median run."""
    middle = median_run(runs)
    before = middle.floor_before
    measures = [incremental, *floor_measures, *(run.measure for run in runs)]
    return {
        "full_ingest_runs": len(runs),
        "transfer_floor_s": round(middle.floor_s, 3),
        "transfer_floor_before_s": round(before.transfer_s, 3),
        "transfer_floor_after_s": round(middle.floor_after.transfer_s, 3),
        "consonance_graphql_floor_s": round(before.consonance_graphql_s, 3),
        "consonance_rest_floor_s": round(before.consonance_rest_s, 3),
        "dam_floor_s": round(before.dam_s, 3),
        "graphql_vs_rest_floor_ratio": round(before.consonance_graphql_s / before.consonance_rest_s, 3),
        "full_ingest_s": round(middle.measure.seconds, 3),
        "full_ingest_cpu_s": round(middle.measure.cpu_s, 3),
        "transfer_floor_cpu_s": round(sum(m.cpu_s for m in floor_measures) / len(floor_measures), 3),
        "incremental_ingest_cpu_s": round(incremental.cpu_s, 3),
        "incremental_ingest_s": round(incremental.seconds, 3),
        "full_vs_transfer_ratio": round(middle.ratio, 3),
        "full_vs_transfer_ratios": [round(run.ratio, 3) for run in runs],
        "full_ingest_records_added": [added(run.metadata) for run in runs],
        "full_vs_floor_before_ratio": round(middle.measure.seconds / before.transfer_s, 3),
        "incremental_vs_full_ratio": round(incremental.seconds / middle.measure.seconds, 4),
        "peak_rss_mb": round(max(m.peak_rss_mb for m in measures), 1),
        "full_records_per_s": round(records / middle.measure.seconds),
        "quarantined_first_run": {k: v.get("quarantined_open") for k, v in middle.metadata.items()},
    }


def fresh_home(stack: contextlib.ExitStack) -> Path:
    """A new CONSODAM_HOME, its store and tables removed (its engine disposed) when the stack closes."""
    home = Path(tempfile.mkdtemp(prefix="consodam-bench-"))
    os.environ["CONSODAM_HOME"] = str(home)
    stack.callback(shutil.rmtree, home, ignore_errors=True)
    stack.callback(forget_engine, store_url())
    return home


def incremental_ingest(
    instance: dg.DagsterInstance, home: Path, sandbox: SandboxProcess, products: int, assets: int
) -> tuple[Measure, int]:
    """0.1% of each system changed, then ingested on the last full ingest's store: its time and how many
    records it added or changed."""
    sandbox.admin(
        "consonance", "POST", "/_sandbox/activity", json={"changes": max(1, products // 1000), "seed": 1}
    )
    sandbox.admin("dam", "POST", "/_sandbox/activity", json={"changes": max(1, assets // 1000), "seed": 2})
    with measured() as incremental:
        second = materialize_ingest(instance, home)
    return incremental, added(second) + sum(second[k].get("changed", 0) for k in second)


def added(metadata: dict[str, dict[str, Any]]) -> int:
    """Records an ingest added, over both systems."""
    return sum(int(asset.get("added", 0)) for asset in metadata.values())


def sensor_ticks(instance: dg.DagsterInstance, sandbox: SandboxProcess, report: Report) -> float:
    from consodam_pipeline.defs.ingest.sensors import consonance_change_sensor, dam_change_sensor
    from consodam_pipeline.store.resource import LineageStoreResource
    from consodam_pipeline.sync.probe import due_now

    resources = {
        "consonance": ConsonanceResource(url=sandbox.consonance_url),
        "dam": OpenTextDamResource(url=sandbox.dam_url),
        "lineage": LineageStoreResource(),
    }
    slowest = 0.0
    for sensor in (consonance_change_sensor, dam_change_sensor):
        cursor = None
        for label in ("first tick", "tick after changes"):
            if label == "tick after changes":
                sandbox.admin("consonance", "POST", "/_sandbox/activity", json={"changes": 20, "seed": 9})
                sandbox.admin("dam", "POST", "/_sandbox/activity", json={"changes": 20, "seed": 9})
            start = time.perf_counter()
            context = dg.build_sensor_context(instance=instance, cursor=due_now(cursor), resources=resources)
            result = sensor(context)  # a tick whose probe is due: it asks its system
            elapsed = time.perf_counter() - start
            cursor = result.cursor  # type: ignore[union-attr]
            requests = len(result.run_requests or [])  # type: ignore[union-attr]
            report.row(f"(d) {sensor.name}: {label}", elapsed, f"{requests} run request(s)")
            slowest = max(slowest, elapsed)
    return slowest
