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
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import httpx
import sqlalchemy as sa
import yaml

from consodam_pipeline.ports import free_port
from consodam_pipeline.processes import Service, descendants, port_answers
from consodam_pipeline.run_launcher import process_alive, worker_pid
from consodam_pipeline.sandbox.people import PeopleAtWork
from consodam_pipeline.sandbox.process import SandboxProcess
from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.store.pgcluster import PostgresCluster, find_pg_bin
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.verify import Holdings, database_mentions, holdings

ROOT = Path(__file__).parent.parent
STOP_BOUND_S = 20.0  # every service exits this long after SIGTERM at most
HEAL_BOUND_S = 240.0  # after a fault: dead runs failed, the change written, nothing in flight
CHANGE_BOUND_S = 180.0  # a change made in one system is in the other
FIRST_LOAD_BOUND_S = 420.0
OUTAGE_S = 20.0
WRITE_STEPS = ("dam_access_restrictions", "dam_title_tags", "consonance_asset_links", "dam_review_tasks")
UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


class DeployCheckFailed(AssertionError):
    """A bound was missed or a system was not exact: the message says which and what was seen."""


@dataclass
class Step:
    name: str
    seconds: float
    bound: float
    detail: str


@dataclass
class Deployment:
    """The services of one deployment, on one machine."""

    workdir: Path
    works: int = 40
    say: Callable[[str], object] = print
    steps: list[Step] = field(default_factory=list)
    services: dict[str, Service] = field(default_factory=dict)
    restarts: list[str] = field(default_factory=list)
    pg: PostgresCluster | None = None
    sandbox: SandboxProcess | None = None
    env: dict[str, str] = field(default_factory=dict)
    grpc_port: int = field(default_factory=free_port)
    web_port: int = field(default_factory=free_port)
    _instance: dg.DagsterInstance | None = None

    # ---- bring-up ----------------------------------------------------------------------------------

    def start(self) -> None:
        bin_dir = find_pg_bin()
        if bin_dir is None:
            raise DeployCheckFailed("PostgreSQL's initdb/pg_ctl are not on PATH nor in /usr/lib/postgresql")
        self.pg = PostgresCluster(bin_dir)
        store_url = self.pg.start()
        self.pg.create_database("dagster")
        self.sandbox = SandboxProcess(self.workdir / "sandbox", works=self.works, seed=5, dirt_rate=0.0)
        self.sandbox.start()
        dagster_home = self.workdir / "dagster_home"
        dagster_home.mkdir(parents=True, exist_ok=True)
        instance = yaml.safe_load((ROOT / "deploy" / "dagster.postgres.yaml").read_text())
        instance["run_monitoring"].update(poll_interval_seconds=5, free_slots_after_run_end_seconds=5)
        (dagster_home / "dagster.yaml").write_text(yaml.safe_dump(instance))
        workspace = yaml.safe_load((ROOT / "deploy" / "workspace.yaml").read_text())
        workspace["load_from"][0]["grpc_server"].update(host="127.0.0.1", port=self.grpc_port)
        (self.workdir / "workspace.yaml").write_text(yaml.safe_dump(workspace))
        self.env = {
            **os.environ,
            **self.sandbox.env,
            "DAGSTER_HOME": str(dagster_home),
            "DAGSTER_PG_HOST": "127.0.0.1",
            "DAGSTER_PG_PORT": str(self.pg.port),
            "DAGSTER_PG_DB": "dagster",
            "DAGSTER_PG_USERNAME": self.pg.user,
            "DAGSTER_PG_PASSWORD": "deploy-check-pg-password",  # trust auth: unused, but never to be logged
            "CONSODAM_STORE_URL": store_url,
            "CONSODAM_HOME": str(self.workdir / "home"),
            "CONSODAM_TABLES_PATH": str(self.workdir / "home" / "tables"),
            "CONSODAM_SENSOR_INTERVAL_S": "5",
            "PYTHONUNBUFFERED": "1",
        }
        os.environ.update({k: v for k, v in self.env.items() if k.startswith(("DAGSTER_", "CONSODAM_"))})
        started = time.monotonic()
        self.start_code_server()
        self.start_service("daemon", [self._bin("dagster-daemon"), "run", "-w", self._workspace])
        self.start_service(
            "webserver",
            [
                self._bin("dagster-webserver"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.web_port),
                "-w",
                self._workspace,
            ],
        )
        self.wait("the webserver answers", lambda: self._web_ok(), 120)
        self.record("services up", time.monotonic() - started, 180, "code server, daemon, webserver")

    @property
    def _workspace(self) -> str:
        return str(self.workdir / "workspace.yaml")

    def _bin(self, name: str) -> str:
        return str(Path(sys.executable).parent / name)

    def start_service(self, name: str, command: list[str]) -> Service:
        log = self.workdir / "logs" / f"{name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        service = Service(name, command, env=self.env, cwd=ROOT, log=log).start()
        self.services[name] = service
        return service

    def start_code_server(self) -> Service:
        command = [self._bin("consodam"), "code-server", "--host", "127.0.0.1", "--port", str(self.grpc_port)]
        service = self.start_service("code_server", command)
        self.wait("the code server answers", lambda: port_answers("127.0.0.1", self.grpc_port), 120)
        return service

    def _web_ok(self) -> bool:
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(f"http://127.0.0.1:{self.web_port}/server_info", timeout=2).status_code == 200
        return False

    @property
    def instance(self) -> dg.DagsterInstance:
        if self._instance is None:
            self._instance = dg.DagsterInstance.from_config(self.env["DAGSTER_HOME"])
        return self._instance

    @property
    def store(self) -> LineageStore:
        return LineageStoreResource(url=self.env["CONSODAM_STORE_URL"]).store()

    @property
    def tables(self) -> Path:
        return Path(self.env["CONSODAM_TABLES_PATH"])

    @property
    def people(self) -> PeopleAtWork:
        assert self.sandbox is not None
        return PeopleAtWork(self.sandbox, self.tables)

    # ---- waiting -----------------------------------------------------------------------------------

    def supervise(self) -> None:
        """As a supervisor would (systemd, compose's restart policy): a service that exited is started again."""
        for name, service in list(self.services.items()):
            if not service.alive():
                self.restarts.append(name)
                self.say(
                    f"  {name} exited ({service.process.returncode if service.process else '?'}): restarted"
                )
                if name == "code_server":
                    self.start_code_server()
                else:
                    self.start_service(name, list(service.command))

    def wait(self, what: str, done: Callable[[], Any], bound_s: float, poll_s: float = 1.0) -> float:
        started = time.monotonic()
        last: Any = None
        while time.monotonic() - started < bound_s:
            try:
                last = done()
            except (sa.exc.DBAPIError, httpx.HTTPError, OSError) as exc:
                last = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            if last is True or (last and not isinstance(last, str)):
                return time.monotonic() - started
            self.supervise()
            time.sleep(poll_s)
        raise DeployCheckFailed(f"{what}: not within {bound_s:.0f} s (last seen: {last})")

    def record(self, name: str, seconds: float, bound: float, detail: str) -> None:
        self.steps.append(Step(name, seconds, bound, detail))
        self.say(f"{name:48} {seconds:7.1f} s (bound {bound:.0f} s)  {detail}")

    def runs(self, *statuses: dg.DagsterRunStatus) -> list[dg.DagsterRun]:
        filters = dg.RunsFilter(statuses=list(statuses)) if statuses else None
        return list(self.instance.get_runs(filters))

    def quiet(self) -> bool | str:
        """Nothing queued or running, and the last edition run succeeded."""
        busy = self.runs(*UNFINISHED)
        if busy:
            return f"{len(busy)} run(s) in flight"
        editions = self.instance.get_runs(dg.RunsFilter(job_name="consodam_editions"), limit=1)
        if not editions:
            return "no edition run yet"
        return editions[0].status == dg.DagsterRunStatus.SUCCESS or f"last edition run {editions[0].status}"

    def exact(self, label: str) -> Holdings:
        """The systems hold exactly what they should, nothing pending; else the check fails."""
        assert self.sandbox is not None
        found = holdings(self.sandbox, self.tables, self.store)
        if not found.exact or found.pending:
            raise DeployCheckFailed(f"{label}: {found.line()} {found.examples}")
        return found

    def settle(self, label: str, landed: Callable[[], Any], bound_s: float = HEAL_BOUND_S) -> float:
        """Wait until the change landed and the deployment is quiet; then the systems must be exact."""
        seconds = self.wait(f"{label}: the change lands", landed, bound_s)
        seconds += self.wait(f"{label}: the deployment goes quiet", self.quiet, bound_s)
        # A quiet moment may fall between the ingest and the edition run it wakes: be quiet twice.
        time.sleep(8)
        seconds += self.wait(f"{label}: the deployment stays quiet", self.quiet, bound_s) + 8
        return seconds

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
            raise DeployCheckFailed(f"the code server ignored SIGTERM for {took:.0f} s")
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
            raise DeployCheckFailed("a second code server started on a port already served")
        product, asset = self.people.approve_a_new_cover(skip=3)
        self.settle("through the new code server", lambda: self.people.linked_in_consonance(product, asset))
        found = self.exact("after the code server's restart")
        self.record(
            "code server SIGTERMed, started again",
            took,
            STOP_BOUND_S,
            f"exited in {took:.1f} s; a second server on its port refused; {found.line()}",
        )

    # ---- stopping ----------------------------------------------------------------------------------

    def stop(self) -> dict[str, float]:
        """SIGTERM each service (the webserver and daemon first); how long each took to exit."""
        took: dict[str, float] = {}
        for name in ("webserver", "daemon", "code_server"):
            if name in self.services:
                took[name] = self.services.pop(name).stop(grace_s=STOP_BOUND_S)
        for service in self.services.values():
            service.stop()
        if self._instance is not None:
            self._instance.dispose()
        if self.sandbox is not None:
            self.sandbox.stop()
        if self.pg is not None:
            self.pg.stop()
        return took

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


@contextlib.contextmanager
def deployment(
    works: int, workdir: Path | None, say: Callable[[str], object] = print
) -> Iterator[Deployment]:
    """A deployment that is stopped (every service, the sandboxes, PostgreSQL) however the block ends."""
    own = workdir is None
    folder = Path(tempfile.mkdtemp(prefix="consodam-deploy-")) if workdir is None else workdir
    deployed = Deployment(folder, works=works, say=say)
    try:
        deployed.start()
        yield deployed
    finally:
        deployed.stop()
        if own:
            shutil.rmtree(folder, ignore_errors=True)


def run_check(works: int, workdir: Path | None, say: Callable[[str], object] = print) -> list[Step]:
    """Every step above; raises DeployCheckFailed at the first bound missed or system not exact."""
    with deployment(works, workdir, say) as deployed:
        deployed.first_load()
        deployed.change_reaches_the_other_system()
        deployed.kill_the_daemon()
        deployed.kill_a_run_worker()
        deployed.stop_postgres()
        deployed.restart_the_code_server()
        leaked = deployed.secrets_found()
        if leaked:
            raise DeployCheckFailed(f"a secret was found in: {', '.join(sorted(set(leaked)))}")
        took: dict[str, float] = {}
        for name in ("webserver", "daemon", "code_server"):
            took[name] = deployed.services.pop(name).stop(grace_s=STOP_BOUND_S)
        slowest = max(took.values())
        if slowest >= STOP_BOUND_S:
            raise DeployCheckFailed(f"a service ignored SIGTERM: {took}")
        detail = ", ".join(f"{k} {v:.1f} s" for k, v in took.items())
        deployed.record("every service stopped with SIGTERM", slowest, STOP_BOUND_S, detail)
        if deployed.restarts:
            deployed.say(f"restarted by the supervisor along the way: {', '.join(deployed.restarts)}")
        return deployed.steps
