"""A run killed outright releases its pool slot: the daemon's run monitoring asks the project's launcher
whether the run worker is alive, fails the dead run and frees its slots, and the next run that needs the
pool starts its step within the bound dagster.yaml sets (here with the intervals shortened)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

from consodam_pipeline.run_launcher import STARTED_PROCESS, MonitoredRunLauncher, process_alive

ROOT = Path(__file__).parent.parent
POLL_S, FREE_AFTER_S = 2, 2
BOUND_S = 90  # kill → the next run's step starts: monitoring poll + slot release + dequeue + process start

LOCATION = """
import time
import dagster as dg

@dg.asset(pool="dam_api")
def holds_the_pool() -> None:
    time.sleep(120)  # killed long before; bounded so nothing outlives the test for long

@dg.asset(pool="dam_api")
def needs_the_pool() -> int:
    return 1

defs = dg.Definitions(
    assets=[holds_the_pool, needs_the_pool],
    jobs=[dg.define_asset_job("hold", ["holds_the_pool"]), dg.define_asset_job("need", ["needs_the_pool"])],
)
"""


@pytest.fixture
def dagster_home(tmp_path: Path) -> Path:
    config = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    config["run_monitoring"].update(
        poll_interval_seconds=POLL_S, free_slots_after_run_end_seconds=FREE_AFTER_S
    )
    config["concurrency"]["pools"]["default_limit"] = 1
    config["run_retries"] = {"enabled": False}
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "location.py").write_text(LOCATION)
    (tmp_path / "workspace.yaml").write_text("load_from:\n  - python_file: location.py\n")
    return home


@pytest.fixture
def daemon(dagster_home: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home)}
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", "workspace.yaml"],
        cwd=dagster_home.parent,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def launch(home: Path, job: str) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    subprocess.run(
        [sys.executable, "-m", "dagster", "job", "launch", "-w", "workspace.yaml", "-j", job],
        cwd=home.parent,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )


def wait_for(condition: object, timeout: float, what: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():  # type: ignore[operator]
            return time.monotonic() - start
        time.sleep(0.5)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s")


def step_started(instance: dg.DagsterInstance, job: str) -> dg.DagsterRun | None:
    for run in instance.get_runs(filters=dg.RunsFilter(job_name=job)):
        if instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START):
            return run
    return None


def worker_pid(instance: dg.DagsterInstance, run: dg.DagsterRun) -> int | None:
    for record in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        if record.message.startswith(STARTED_PROCESS):
            return int(record.message.split("pid:")[1].strip(" ).").split(")")[0])
    return None


def test_a_killed_run_releases_its_pool_slot(dagster_home: Path, daemon: subprocess.Popen[bytes]) -> None:
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        assert isinstance(instance.run_launcher, MonitoredRunLauncher)
        launch(dagster_home, "hold")
        wait_for(lambda: step_started(instance, "hold"), 120, "the first run's step start")
        holder = step_started(instance, "hold")
        assert holder is not None
        pid = worker_pid(instance, holder)
        assert pid is not None and process_alive(pid)
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        launch(dagster_home, "need")
        waited = wait_for(lambda: step_started(instance, "need"), BOUND_S, "the next run's step start")
        print(f"kill → the next run's step started: {time.monotonic() - killed_at:.1f} s")
        assert waited <= BOUND_S and time.monotonic() - killed_at <= BOUND_S + 5
        dead = instance.get_run_by_id(holder.run_id)
        assert dead is not None and dead.status == dg.DagsterRunStatus.FAILURE
        assert not process_alive(pid)
