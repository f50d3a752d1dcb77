"""The run launcher for one machine: Dagster's default launcher, plus the health check run monitoring needs.

Dagster's DefaultRunLauncher cannot tell whether a run's process is alive, so a run worker killed outright
(an out-of-memory kill, SIGKILL) stays STARTED forever and keeps its pool slots: every later run that
needs the pool waits. A run worker logs its pid when it starts ("Started process for run (pid: N)");
this launcher answers the monitoring daemon's question from it: a run whose process is gone (or a zombie)
is reported failed, and the daemon frees its slots `free_slots_after_run_end_seconds` later (dagster.yaml).
A run with no recorded process (executed in-process, by a test or `consodam demo`) is never failed here.
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, DagsterRun, DefaultRunLauncher
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus

STARTED_PROCESS = "Started process for run (pid:"


class MonitoredRunLauncher(DefaultRunLauncher):
    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        pid = worker_pid(self._instance, run.run_id)
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "no run worker process recorded")
        if process_alive(pid):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker process {pid} is alive")
        return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker process {pid} is gone")


def worker_pid(instance: DagsterInstance, run_id: str) -> int | None:
    """The pid the run's worker logged when it started, if it did."""
    records = instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT)
    started = [r for r in records if r.dagster_event and r.message.startswith(STARTED_PROCESS)]
    if not started:
        return None
    data = started[-1].dagster_event.engine_event_data  # type: ignore[union-attr]
    pid = data.metadata.get("pid") if data is not None else None
    return int(str(pid.value)) if pid is not None else None


def process_alive(pid: int) -> bool:
    """True if the process exists and has not exited (a zombie, killed but not yet reaped, has)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        state = stat.read_text().rsplit(")", 1)[-1].split()[0]
        return state not in ("Z", "X")
    return True
