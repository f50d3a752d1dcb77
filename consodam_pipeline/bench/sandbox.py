"""`consodam bench sandbox`: how fast the sandboxes serve pages at a given catalog size."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import httpx

from consodam_pipeline.bench.common import Report, bench_sandbox
from consodam_pipeline.clients.consonance import PRODUCT_FIELDS
from consodam_pipeline.endpoints import CONSONANCE_KEY


def _timed(fn: object, repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return samples


def run(works: int, seed: int, json_path: Path | None, workdir: Path, repeats: int = 20) -> None:
    report = Report(f"consodam bench sandbox --works {works} (seed {seed})")
    sandbox = bench_sandbox(works, seed, workdir, report)
    with sandbox:
        query = (
            "query P($s: ProductSearchAttributes, $l: Int) {"
            f" products(productSearch: $s, limit: $l) {{ {PRODUCT_FIELDS} }} }}"
        )
        products = sandbox.admin("consonance", "GET", "/_sandbox/stats")["counts"]["products"]
        with httpx.Client(base_url=sandbox.consonance_url, timeout=60) as client:
            offsets = [int(products * i / repeats) for i in range(repeats)]
            it = iter(offsets)

            def graphql_page() -> None:
                body = {"query": query, "variables": {"s": {"after": next(it)}, "l": 500}}
                response = client.post(
                    "/graphql", json=body, headers={"Authorization": f"Bearer {CONSONANCE_KEY}"}
                )
                assert response.status_code == 200 and response.json()["data"]["products"]

            graphql = _timed(graphql_page, repeats)
        token = sandbox.dam_token()
        total = sandbox.admin("dam", "GET", "/_sandbox/stats")["counts"]["asset_versions"]
        with httpx.Client(base_url=sandbox.dam_url, timeout=60) as client:
            it = iter([int(total * i / repeats) for i in range(repeats)])

            def dam_page() -> None:
                params: dict[str, str | int] = {"after": next(it), "limit": 500, "versions": "all"}
                response = client.get(
                    "/otmmapi/v6/assets", params=params, headers={"Authorization": f"Bearer {token}"}
                )
                assert response.status_code == 200

            dam = _timed(dam_page, repeats)
    for name, samples in (
        ("GraphQL page of 500 products (all fields)", graphql),
        ("DAM page of 500 versions", dam),
    ):
        report.row(
            name + " median", statistics.median(samples), f"max {max(samples):.3f}s over {repeats} pages"
        )
    report.figures.update(
        {
            "works": works,
            "editions": products,
            "dam_asset_versions": total,
            "graphql_500_products_median_s": round(statistics.median(graphql), 4),
            "graphql_500_products_max_s": round(max(graphql), 4),
            "dam_500_versions_median_s": round(statistics.median(dam), 4),
        }
    )
    report.emit(json_path)
