"""`consodam deploy-check`: the production topology as processes on this machine, put through its faults.

A throwaway PostgreSQL (Dagster's storage and the lineage store), both sandboxes, and — each a process of
its own, on deploy/dagster.postgres.yaml and deploy/workspace.yaml — the code server (`consodam
code-server`), `dagster-daemon run` and `dagster-webserver`. Nobody launches a run: the sensors load the
sandboxes and sync them. Then, one at a time, with a change made through `/_sandbox/` each time:

1. a change in each system reaches the other;
2. the daemon is SIGKILLed and started again;
3. a run worker is SIGKILLed in the middle of a write step;
4. PostgreSQL stops for 20 s while a run writes;
5. the code server is restarted (SIGTERM, then a new one on the same port).

After each, the deployment heals by itself within a stated bound (dead runs failed, slots freed, the change
written) and what each system holds is exact (consodam_pipeline/verify.py). Finally every service is
stopped with SIGTERM (each within `STOP_BOUND_S`) and no secret is found in a log, a file or a database.
The run-monitoring intervals are shortened to 5 s here (production: 20 s) and the sensors probe every
5 s (CONSODAM_SENSOR_INTERVAL_S; production: 60 s), so the whole check takes minutes, not hours.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg

from consodam_pipeline.deployment import (
    HEAL_BOUND_S,
    STOP_BOUND_S,
    Deployment,
    DeploymentFailed,
    Step,
    deployment,
)
from consodam_pipeline.processes import Service, descendants
from consodam_pipeline.run_launcher import process_alive, worker_pid
from consodam_pipeline.verify import database_mentions

CHANGE_BOUND_S = 180.0  # a change made in one system is in the other
FIRST_LOAD_BOUND_S = 420.0
OUTAGE_S = 20.0
WRITE_STEPS = ("dam_access_restrictions", "dam_title_tags", "consonance_asset_links", "dam_review_tasks")


class DeployCheck(Deployment):
    """The production deployment put through its faults, one at a time."""

    # ---- the faults ---------------------------------------------------------------------------------

    def first_load(self) -> None:
        seconds = self.settle("the first load", self.quiet, FIRST_LOAD_BOUND_S)
        found = self.exact("after the first load")
        self.record("first load by the sensors alone", seconds, FIRST_LOAD_BOUND_S, found.line())

    def change_reaches_the_other_system(self) -> None:
        product, asset = self.people.approve_a_new_cover()
        seconds = self.wait(
            "an approval reaches Consonance",
            lambda: self.people.linked_in_consonance(product, asset),
            CHANGE_BOUND_S,
        )
        self.record(
            "DAM approval → Consonance link", seconds, CHANGE_BOUND_S, f"{asset} on product {product}"
        )
        self.settle("after the approval", lambda: True)
        assets = self.people.narrow_rights()
        seconds = self.wait(
            "a rights change reaches the DAM", lambda: self.people.rights_in_dam(assets), CHANGE_BOUND_S
        )
        self.record("Consonance rights → DAM restriction", seconds, CHANGE_BOUND_S, f"{len(assets)} versions")
        self.settle("after the rights change", lambda: True)
        self.exact("after both changes")

    def kill_the_daemon(self) -> None:
        moment = time.time()
        daemon = self.services["daemon"]
        daemon.signal(signal.SIGKILL)
        daemon.wait()
        product, asset = self.people.approve_a_new_cover(skip=1)
        time.sleep(5)
        started = time.monotonic()
        self.start_service("daemon", list(daemon.command))
        self.settle("after the daemon's restart", lambda: self.people.linked_in_consonance(product, asset))
        found = self.exact("after the daemon's restart")
        runs = self.outcomes_since(moment)
        self.record(
            "daemon SIGKILLed, started again",
            time.monotonic() - started,
            HEAL_BOUND_S,
            f"{runs}; {found.line()}",
        )

    def kill_a_run_worker(self) -> None:
        moment = time.time()
        product, asset = self.people.approve_a_new_cover(skip=2)
        killed: dict[str, Any] = {}

        def writing() -> bool:
            for run in self.runs(dg.DagsterRunStatus.STARTED):
                if run.job_name != "consodam_editions":
                    continue
                steps = self.instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
                pid = worker_pid(self.instance, run.run_id)
                if pid and any(r.step_key in WRITE_STEPS for r in steps):
                    for victim in [*descendants(pid), pid]:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(victim, signal.SIGKILL)
                    killed.update(run_id=run.run_id, pid=pid, at=time.monotonic())
                    return True
            return False

        self.wait("an edition run reaches a write step", writing, CHANGE_BOUND_S, 0.2)
        failed = self.wait(
            "the killed run is failed by run monitoring",
            lambda: self.instance.get_run_by_id(killed["run_id"]).status == dg.DagsterRunStatus.FAILURE,  # type: ignore[union-attr]
            60,
        )
        self.settle("after the run worker's kill", lambda: self.people.linked_in_consonance(product, asset))
        self.wait("pool slots are free", self.slots_free, 60)
        found = self.exact("after the run worker's kill")
        self.record(
            "run worker SIGKILLed mid-write",
            time.monotonic() - killed["at"],
            HEAL_BOUND_S,
            f"failed after {failed:.0f} s; {self.outcomes_since(moment)}; {found.line()}",
        )

    def outcomes_since(self, moment: float) -> str:
        """What became of the runs created since `moment` (epoch seconds): how many failed, were retried."""
        since = datetime.fromtimestamp(moment, UTC)
        runs = list(self.instance.get_runs(dg.RunsFilter(created_after=since)))
        failed = [r for r in runs if r.status == dg.DagsterRunStatus.FAILURE]
        retries = [r for r in runs if r.tags.get("dagster/parent_run_id")]
        return f"{len(runs)} runs, {len(failed)} failed, {len(retries)} retries"

    def slots_free(self) -> bool | str:
        storage = self.instance.event_log_storage
        held = {
            pool: storage.get_concurrency_info(pool).claimed_slots for pool in ("consonance_api", "dam_api")
        }
        return not any(held.values()) or f"slots held: {held}"

    def stop_postgres(self) -> None:
        assert self.pg is not None
        moment = time.time()
        assets = self.people.narrow_rights(skip=1)
        self.wait(
            "an edition run starts",
            lambda: any(r.job_name == "consodam_editions" for r in self.runs(dg.DagsterRunStatus.STARTED)),
            CHANGE_BOUND_S,
            0.2,
        )
        self.pg.halt()
        time.sleep(OUTAGE_S)
        self.pg.resume()
        started = time.monotonic()
        self.settle("after PostgreSQL's outage", lambda: self.people.rights_in_dam(assets))
        found = self.exact("after PostgreSQL's outage")
        self.record(
            f"PostgreSQL stopped {OUTAGE_S:.0f} s mid-run",
            time.monotonic() - started,
            HEAL_BOUND_S,
            f"{self.outcomes_since(moment)}; {found.line()}",
        )

    def restart_the_code_server(self) -> None:
        old = self.services["code_server"]
        family = {old.pid, *descendants(old.pid)}
        took = old.stop(grace_s=STOP_BOUND_S)
        if took >= STOP_BOUND_S:
            raise DeploymentFailed(f"the code server ignored SIGTERM for {took:.0f} s")
        self.wait("the old code server is gone", lambda: not any(process_alive(p) for p in family), 10)
        self.start_code_server()
        second = Service(
            "second_code_server",
            [self._bin("consodam"), "code-server", "--host", "127.0.0.1", "--port", str(self.grpc_port)],
            env=self.env,
            log=self.workdir / "logs" / "second_code_server.log",
        ).start()
        refused = second.wait()
        if refused == 0:
            raise DeploymentFailed("a second code server started on a port already served")
        product, asset = self.people.approve_a_new_cover(skip=3)
        self.settle("through the new code server", lambda: self.people.linked_in_consonance(product, asset))
        found = self.exact("after the code server's restart")
        self.record(
            "code server SIGTERMed, started again",
            took,
            STOP_BOUND_S,
            f"exited in {took:.1f} s; a second server on its port refused; {found.line()}",
        )

    def secrets_found(self) -> list[str]:
        """Where a secret consodam was given shows up: logs, DAGSTER_HOME, CONSODAM_HOME, either database."""
        from consodam_pipeline import endpoints

        secrets = [endpoints.DAM_CLIENT_SECRET, endpoints.CONSONANCE_KEY, self.env["DAGSTER_PG_PASSWORD"]]
        found = []
        for folder in (
            self.workdir / "logs",
            Path(self.env["DAGSTER_HOME"]),
            Path(self.env["CONSODAM_HOME"]),
        ):
            for path in folder.rglob("*"):
                if path.is_file() and path.suffix != ".parquet":
                    text = path.read_bytes()
                    found += [f"{path.name}" for s in secrets if s.encode() in text]
        for url in (
            self.env["CONSODAM_STORE_URL"],
            self.env["CONSODAM_STORE_URL"].rsplit("/", 1)[0] + "/dagster",
        ):
            found += [f"{url.rsplit('/', 1)[1]}: {where}" for where in database_mentions(url, secrets)]
        return found


def run_check(works: int, workdir: Path | None, say: Callable[[str], object] = print) -> list[Step]:
    """Every step above; raises DeploymentFailed at the first bound missed or system not exact."""
    with deployment(works, workdir, say, kind=DeployCheck) as deployed:
        deployed.first_load()
        deployed.change_reaches_the_other_system()
        deployed.kill_the_daemon()
        deployed.kill_a_run_worker()
        deployed.stop_postgres()
        deployed.restart_the_code_server()
        leaked = deployed.secrets_found()
        if leaked:
            raise DeploymentFailed(f"a secret was found in: {', '.join(sorted(set(leaked)))}")
        took: dict[str, float] = {}
        for name in ("webserver", "daemon", "code_server"):
            took[name] = deployed.services.pop(name).stop(grace_s=STOP_BOUND_S)
        slowest = max(took.values())
        if slowest >= STOP_BOUND_S:
            raise DeploymentFailed(f"a service ignored SIGTERM: {took}")
        detail = ", ".join(f"{k} {v:.1f} s" for k, v in took.items())
        deployed.record("every service stopped with SIGTERM", slowest, STOP_BOUND_S, detail)
        if deployed.restarts:
            deployed.say(f"restarted by the supervisor along the way: {', '.join(deployed.restarts)}")
        return deployed.steps
