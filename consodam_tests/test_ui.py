"""The Dagster UI, as the data team sees it: the webserver on an instance where the ingest, the rights matrix,
the links and the Consonance write have run; in chromium, the asset graph shows the groups and their assets,
and an asset page shows the numbers the run reported and its latest audit changes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import pytest

from consodam_pipeline.domain.periods import period_keys
from consodam_pipeline.ports import free_port
from consodam_tests.browser import browser_page, chromium
from consodam_tests.pipeline import INGEST, edition_assets, metadata, resources, sync_partitions
from consodam_tests.support import Sandbox, env

ROOT = Path(__file__).parents[1]
SHOWN = ("rights_matrix", "approved_version_links", "consonance_asset_links")


@pytest.fixture
def materialized(tmp_path: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """A DAGSTER_HOME where the ingest and three edition-level assets ran against a small sandbox."""
    chromium()  # skip (or fail in CI) before the slow part when there is no browser
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    # As the shipped instance: no community dialog over the page a second after it loads.
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    sandbox = Sandbox(tmp_path / "sandbox", works=60).start()
    try:
        with env({"DAGSTER_HOME": str(dagster_home)}):
            instance = dg.DagsterInstance.get()
            home = tmp_path / "home"
            dg.materialize(INGEST, instance=instance, resources=resources(sandbox, home))
            selected = [a for a in edition_assets() if a.key.to_user_string() in SHOWN]
            runs = sync_partitions(sandbox, home, instance, period_keys(), selected)
            instance.dispose()
        yield dagster_home, metadata(runs, "consonance_asset_links")
    finally:
        sandbox.stop()


@pytest.fixture
def webserver(materialized: tuple[Path, dict[str, Any]]) -> Iterator[str]:
    dagster_home, _ = materialized
    port = free_port()
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "dagster-webserver"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-w",
            str(ROOT / "workspace.yaml"),
        ],
        cwd=ROOT,
        env={**os.environ, "DAGSTER_HOME": str(dagster_home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            raise AssertionError("dagster-webserver did not answer within 120 s")
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def test_the_asset_graph_and_an_asset_page_render(
    webserver: str, materialized: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    _, reported = materialized
    with browser_page() as page:
        page.goto(f"{webserver}/asset-groups")
        for group in ("ingest", "rights", "links", "workflow", "launch", "tags"):
            page.get_by_text(group, exact=True).first.wait_for(timeout=60_000)
        page.goto(f"{webserver}/locations/consodam_pipeline/asset-groups/rights")
        page.get_by_text("dam_access_restrictions", exact=True).first.wait_for(timeout=60_000)
        assert page.get_by_text("rights_matrix", exact=True).count() >= 1
        page.screenshot(path=str(tmp_path / "asset-graph.png"))

        page.goto(f"{webserver}/assets/consonance_asset_links")
        page.get_by_text("latest_changes", exact=True).first.wait_for(timeout=60_000)
        shown = page.locator("body").inner_text()
        for key in ("written", "created", "failed", "ledger_events", "pending_failures"):
            assert key in shown, key
        row = page.locator("tr", has_text="ledger_events").first.inner_text()
        assert str(reported["ledger_events"]) in row and reported["ledger_events"] > 0
        page.get_by_text("[Show Markdown]").last.click()
        page.get_by_text("link_written").first.wait_for(timeout=30_000)
        page.screenshot(path=str(tmp_path / "asset-page.png"))
