"""`consodam bench peers`: consodam's first ingest of Consonance against what a data team would set up instead —
dlt's `rest_api` source reading REST v4 into duckdb — on the same sandbox, in the same run, each end to end as
a process of its own (interpreter start, imports, the load, and everything it writes).

consodam's side is `dagster asset materialize --select title_metadata_snapshot` on a fresh Dagster home and
store: the edition history, quarantine, period markers and the asset's checks all run, as they do in a
deployment. Each side runs `--repeats` times, alternating, and its fastest run is reported.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import click

from consodam_pipeline.bench.common import SHIPPED_INSTANCE, Report, bench_sandbox, peak_rss_mb
from consodam_pipeline.processes import descendants
from consodam_pipeline.sync.ingest_checks import TITLE_CHECKS

DLT_HINT = "dlt is not installed: `uv sync --extra peers` adds it (make demo leaves it out)"
CONSODAM_STEP = "title_metadata_snapshot"
CONSODAM_CHECKS = len(TITLE_CHECKS)  # evaluated in the asset's step


@dataclass
class ProcessRun:
    seconds: float
    peak_rss_mb: float
    stdout: str


def timed_process(command: list[str], env: dict[str, str], timeout_s: float) -> ProcessRun:
    """Wall time from spawn to exit, and the peak resident memory (VmHWM) of the largest process of its
    tree, sampled every 0.1 s: a run's steps are processes of their own, forked from a forkserver."""
    start = time.perf_counter()
    peak, next_sample = 0.0, start
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = subprocess.Popen(command, env=env, stdout=out, stderr=err)
        deadline = start + timeout_s
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            now = time.perf_counter()
            if now > deadline:
                child.kill()
                os.wait4(child.pid, 0)
                raise click.ClickException(f"{' '.join(command[2:5])} ran past {timeout_s:.0f} s")
            if now >= next_sample:
                tree = [child.pid, *descendants(child.pid)]
                peak = max([peak, *(peak_rss_mb(p) for p in tree)])
                next_sample = now + 0.1
            time.sleep(0.01)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            tail = err.read().decode(errors="replace")[-1500:]
            raise click.ClickException(f"{' '.join(command[2:5])} exited {child.returncode}:\n{tail}")
        return ProcessRun(seconds, max(peak, usage.ru_maxrss / 1024), out.read().decode())


def dlt_available() -> bool:
    try:
        import dlt  # noqa: F401
    except ImportError:
        return False
    return True


def run_dlt(env: dict[str, str], scratch: Path, page_size: int, timeout_s: float) -> tuple[ProcessRun, int]:
    work = scratch / "dlt"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    dlt_env = {
        **env,
        "DLT_DATA_DIR": str(work / "data"),
        "RUNTIME__DLTHUB_TELEMETRY": "false",  # nothing leaves 127.0.0.1
        "RUNTIME__LOG_LEVEL": "WARNING",
    }
    command = [sys.executable, "-m", "consodam_pipeline.bench.dlt_peer", str(work), str(page_size)]
    done = timed_process(command, dlt_env, timeout_s)
    return done, int(json.loads(done.stdout.strip().splitlines()[-1])["products"])


def run_consodam(env: dict[str, str], scratch: Path, timeout_s: float) -> tuple[ProcessRun, int]:
    """The asset as a deployment runs it, on an empty Dagster home and store; returns what it ingested."""
    import dagster as dg

    home = scratch / "consodam"
    shutil.rmtree(home, ignore_errors=True)
    (home / "dagster").mkdir(parents=True)
    if SHIPPED_INSTANCE.exists():  # the instance `make demo` and `make dev` run with (telemetry off)
        shutil.copy(SHIPPED_INSTANCE, home / "dagster" / "dagster.yaml")
    run_env = {**env, "DAGSTER_HOME": str(home / "dagster"), "CONSODAM_HOME": str(home / "store")}
    for inherited in ("CONSODAM_STORE_URL", "CONSODAM_TABLES_PATH"):
        run_env.pop(inherited, None)
    command = [sys.executable, "-m", "dagster", "asset", "materialize", "--select", CONSODAM_STEP]
    done = timed_process([*command, "-m", "consodam_pipeline.definitions"], run_env, timeout_s)
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(CONSODAM_STEP))
        assert event is not None and event.asset_materialization is not None
        metadata = {k: v.value for k, v in event.asset_materialization.metadata.items()}
        checks = instance.get_records_for_run(
            event.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION
        ).records
    if len(checks) < CONSODAM_CHECKS:
        raise click.ClickException(f"{len(checks)} of the asset's {CONSODAM_CHECKS} checks ran")
    received = sum(int(str(metadata.get(key, 0))) for key in ("added", "quarantined_open"))
    return done, received


def run(works: int, seed: int, json_path: Path | None, workdir: Path, repeats: int) -> None:
    if not dlt_available():
        raise click.ClickException(DLT_HINT)
    from consodam_pipeline.clients.consonance import ConsonanceResource

    report = Report(f"consodam bench peers --works {works} (seed {seed})")
    sandbox = bench_sandbox(works, seed, workdir, report)
    scratch = Path(tempfile.mkdtemp(prefix="consodam-bench-"))
    try:
        with sandbox:
            env = {**os.environ, **sandbox.env}
            editions = sandbox.admin("consonance", "GET", "/_sandbox/stats")["counts"]["products"]
            page_size = ConsonanceResource(url=sandbox.consonance_url).page_size
            timeout_s = 120 + works / 50
            dlt_runs, consodam_runs = [], []
            for attempt in range(1, repeats + 1):
                dlt_run, loaded = run_dlt(env, scratch, page_size, timeout_s)
                if loaded != editions:
                    raise click.ClickException(f"dlt loaded {loaded} of {editions} products")
                dlt_runs.append(dlt_run)
                report.row(f"dlt rest_api → duckdb, run {attempt}", dlt_run.seconds, "", dlt_run.peak_rss_mb)
                own_run, received = run_consodam(env, scratch, timeout_s)
                if received != editions:
                    raise click.ClickException(f"consodam took in {received} of {editions} editions")
                consodam_runs.append(own_run)
                report.row(
                    f"consodam {CONSODAM_STEP}, run {attempt}", own_run.seconds, "", own_run.peak_rss_mb
                )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    dlt_best = min(dlt_runs, key=lambda r: r.seconds)
    own_best = min(consodam_runs, key=lambda r: r.seconds)
    consodam_rate, dlt_rate = editions / own_best.seconds, editions / dlt_best.seconds
    report.figures.update(
        {
            "works": works,
            "editions": editions,
            "repeats": repeats,
            "consodam_s": round(own_best.seconds, 3),
            "dlt_s": round(dlt_best.seconds, 3),
            "consodam_records_per_s": round(consodam_rate),
            "dlt_records_per_s": round(dlt_rate),
            "ratio_vs_dlt": round(consodam_rate / dlt_rate, 3),
            "consodam_peak_rss_mb": round(own_best.peak_rss_mb, 1),
            "dlt_peak_rss_mb": round(dlt_best.peak_rss_mb, 1),
        }
    )
    report.emit(json_path)
