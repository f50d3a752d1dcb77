"""The benchmark commands run end to end at a small size and write the figures they promise."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A bench's TMPDIR, short (chromium's socket path under it must stay short) and removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="bench-scratch-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def env_with(scratch: Path) -> dict[str, str]:
    return {**os.environ, "TMPDIR": str(scratch)}


def left_behind(scratch: Path) -> list[str]:
    """The scratch homes a bench did not remove."""
    return [p.name for p in scratch.glob("consodam-bench-*")]


def run_bench(
    name: str, works: int, tmp_path: Path, scratch: Path, *options: str, timeout_s: int = 600
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """`consodam bench NAME --works N [OPTIONS]` as a user runs it; it must succeed and leave no scratch
    home."""
    out = tmp_path / f"{name}.json"
    command = ["bench", name, "--works", str(works), "--workdir", str(tmp_path / "work"), "--json", str(out)]
    command += options
    done = subprocess.run(
        [sys.executable, "-m", "consodam_pipeline.cli", *command],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=env_with(scratch),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert left_behind(scratch) == [], name
    return done, json.loads(out.read_text())


def test_bench_ingest_writes_its_figures(tmp_path: Path, scratch: Path) -> None:
    done, figures = run_bench("ingest", 120, tmp_path, scratch, "--repeats", "2")
    for key in ("full_vs_transfer_ratio", "incremental_vs_full_ratio", "sensor_tick_s", "peak_rss_mb"):
        assert isinstance(figures[key], int | float) and figures[key] > 0, key
    assert figures["dam_asset_versions"] > 0 and figures["editions"] > 0
    # The ratio is to the floor measured on either side of the full ingest, averaged.
    before, after = figures["transfer_floor_before_s"], figures["transfer_floor_after_s"]
    assert before > 0 and after > 0
    assert abs(figures["transfer_floor_s"] - (before + after) / 2) <= 0.002
    ratio = figures["full_ingest_s"] / figures["transfer_floor_s"]
    assert abs(figures["full_vs_transfer_ratio"] - ratio) <= 0.01 * ratio
    assert "(b) full ingest" in done.stdout and "peak MB" in done.stdout
    # Each full ingest ran on a fresh store between two floors; the figures are those of the median run
    # (the lower of two), and every run's ratio is listed.
    assert figures["full_ingest_runs"] == 2
    ratios = figures["full_vs_transfer_ratios"]
    assert len(ratios) == 2 and figures["full_vs_transfer_ratio"] == min(ratios)
    for run in (1, 2):
        assert f"(b) full ingest (both systems), run {run}" in done.stdout
        assert f"transfer floor again, after full ingest {run}" in done.stdout
    # Both were first ingests: each added every record (a reused store would have added none).
    first, second = figures["full_ingest_records_added"]
    assert first == second >= figures["editions"] + figures["dam_asset_versions"] * 0.9
    assert figures["full_ingest_cpu_s"] > 0 and figures["transfer_floor_cpu_s"] > 0


def test_bench_peers_runs_dlt_and_consodam_on_one_sandbox(tmp_path: Path, scratch: Path) -> None:
    """Both sides load every edition (the bench refuses a short load) and the figures are written."""
    done, figures = run_bench("peers", 150, tmp_path, scratch)
    for key in ("consodam_records_per_s", "dlt_records_per_s", "ratio_vs_dlt", "consodam_peak_rss_mb"):
        assert isinstance(figures[key], int | float) and figures[key] > 0, key
    assert figures["consodam_records_per_s"] == round(figures["editions"] / figures["consodam_s"])
    assert "dlt rest_api" in done.stdout and "consodam title_metadata_snapshot" in done.stdout


def test_bench_rights_workflow_launch_and_audit_write_their_figures(tmp_path: Path, scratch: Path) -> None:
    promised = {
        "rights": ("matrix_s", "naive_s", "speedup_vs_naive", "peak_rss_mb", "checks_s"),
        "workflow": ("packages_s", "naive_s", "speedup_vs_naive", "peak_rss_mb"),
        "launch": (
            *("launch_plan_s", "title_sheets", "title_sheets_per_s", "peak_rss_mb", "speedup_vs_naive"),
            "step_peak_rss_mb",
        ),
        "audit": (
            "as_of_query_p99_ms",
            "cli_audit_median_s",
            "report_month_s",
            "report_month_rows",
            "ledger_rows",
            "backfill_step_peak_mb",
            "rebackfill_step_peak_mb",
            "report_step_peak_mb",
        ),
    }
    for bench, keys in promised.items():
        done, figures = run_bench(bench, 400, tmp_path, scratch)
        for key in keys:
            assert isinstance(figures[key], int | float) and figures[key] > 0, (bench, key)
        assert "naive per-" in done.stdout or bench == "audit"
    # the replay derived nothing: no period's editions or versions changed between the two
    assert figures["rebackfill_new_ledger_rows"] == figures["rebackfill_periods_derived"] == 0


def test_bench_writes_counts_what_each_system_holds_under_faults(tmp_path: Path, scratch: Path) -> None:
    _, figures = run_bench("writes", 120, tmp_path, scratch, timeout_s=900)
    assert figures["faults_fired_consonance"] > 0 and figures["faults_fired_dam"] > 0
    assert figures["faulted_run_succeeded"] is True, figures["faulted_run_failed_steps"]
    for moment in ("after_faults", "after_clean"):
        assert figures[f"{moment}_links"] > 0
        assert (figures[f"{moment}_duplicates"], figures[f"{moment}_stale"]) == (0, 0), figures
    assert (figures["after_clean_missing"], figures["after_clean_pending"]) == (0, 0), figures
    # the clean run writes what failed under faults, and nothing else
    written_clean = sum(figures.get(f"clean_{k}", 0) for k in ("created", "updated", "removed"))
    assert written_clean == figures["after_faults_pending"], figures


def test_a_chromium_that_cannot_start_costs_the_audit_bench_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from consodam_pipeline.bench.audit import chromium_load_ms

    broken = tmp_path / "bin" / "chromium"
    broken.parent.mkdir()
    broken.write_text("#!/bin/sh\necho 'cannot open display' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("PATH", f"{broken.parent}:{os.environ['PATH']}")
    page = tmp_path / "day.html"
    page.write_text("<html><body>report</body></html>")
    assert chromium_load_ms(page) is None
    said = capsys.readouterr().err.strip().splitlines()
    assert len(said) == 1 and said[0].startswith("chromium could not load the report")


@pytest.mark.timeout(900)  # the catalog's first load, two minutes for the DAM window, rest, two changes
def test_bench_latency_times_changes_through_the_deployment_make_dev_starts(
    tmp_path: Path, scratch: Path
) -> None:
    """`make dev`'s deployment loads a small catalog by its sensors alone; an approval in the DAM and a
    milestone in Consonance each show in the other system (read back over its API), and at rest the
    sensors' probes are the only traffic: requests, but no run."""
    out = tmp_path / "latency.json"
    command = [
        *("bench", "latency", "--works", "40", "--repeat", "1", "--kinds", "approval,milestone"),
        *("--rest", "20", "--workdir", str(tmp_path / "work"), "--json", str(out)),
    ]
    bench = subprocess.Popen(
        [sys.executable, "-m", "consodam_pipeline.cli", *command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env_with(scratch), "CONSODAM_SENSOR_INTERVAL_S": "10"},
    )
    try:
        stdout, stderr = bench.communicate(timeout=780)
    except subprocess.TimeoutExpired:
        bench.terminate()  # SIGTERM: the bench stops the sandboxes and `dg dev` it started
        stdout, stderr = bench.communicate(timeout=60)
    done = subprocess.CompletedProcess(bench.args, bench.returncode, stdout, stderr)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    for key in ("approval_to_consonance_p50_s", "approval_to_consonance_p95_s", "milestone_to_tasks_p50_s"):
        assert 0 < figures[key] < 300, key
    assert figures["consonance_requests_per_min_at_rest"] > 0 and figures["dam_requests_per_min_at_rest"] > 0
    assert figures["runs_at_rest"] == 0
    both = figures["consonance_requests_per_min_at_rest"] + figures["dam_requests_per_min_at_rest"]
    assert abs(figures["requests_per_min_at_rest"] - both) <= 0.11
    assert "approval_to_consonance p50" in done.stdout and "at rest" in done.stdout
