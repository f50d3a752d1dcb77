"""A deployment of consodam as processes on this machine, started from nothing and stopped when told.

Two topologies: "dev" is what `make dev` starts (both sandboxes, then `dg dev`: webserver, daemon and code
server on Dagster's embedded SQLite, deploy/dagster.yaml); "production" is DESIGN §13's (a throwaway
PostgreSQL for Dagster's storage and the lineage store, both sandboxes, and the code server, `dagster-daemon
run` and `dagster-webserver` each a process of its own, on deploy/dagster.postgres.yaml and
deploy/workspace.yaml). Nobody launches a run: the sensors load the sandboxes and sync them. What a caller
waits for (a change landed, the deployment quiet, the systems exact) is bounded; a bound missed raises
DeploymentFailed with what was last seen. Used by `consodam deploy-check` and `consodam bench latency`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import dagster as dg
import httpx
import sqlalchemy as sa
import yaml

from consodam_pipeline.ports import free_port
from consodam_pipeline.processes import Service, port_answers
from consodam_pipeline.sandbox.people import PeopleAtWork
from consodam_pipeline.sandbox.process import SandboxProcess
from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.store.pgcluster import PostgresCluster, find_pg_bin
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.verify import Holdings, holdings

ROOT = Path(__file__).parent.parent
STOP_BOUND_S = 20.0  # every service exits this long after SIGTERM at most
HEAL_BOUND_S = 240.0  # after a fault: dead runs failed, the change written, nothing in flight
UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


class DeploymentFailed(AssertionError):
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
    seed: int = 5
    say: Callable[[str], object] = print
    steps: list[Step] = field(default_factory=list)
    services: dict[str, Service] = field(default_factory=dict)
    restarts: list[str] = field(default_factory=list)
    pg: PostgresCluster | None = None
    sandbox: SandboxProcess | None = None
    env: dict[str, str] = field(default_factory=dict)
    grpc_port: int = field(default_factory=free_port)
    web_port: int = field(default_factory=free_port)
    topology: str = "production"  # or "dev": what `make dev` starts (sandboxes, `dg dev`, SQLite)
    _instance: dg.DagsterInstance | None = None
    _people: PeopleAtWork | None = None
    _env_before: dict[str, str | None] = field(default_factory=dict)

    # ---- bring-up ----------------------------------------------------------------------------------

    def start(self) -> None:
        if self.topology == "dev":
            self.start_dev()
        else:
            self.start_production()

    def start_dev(self) -> None:
        """The sandboxes and `dg dev` (webserver, daemon, code server) on Dagster's embedded SQLite, the
        instance file `make dev` copies: the deployment a publisher's engineer runs first."""
        from consodam_pipeline.dev import dev_command, dev_env

        self.sandbox = SandboxProcess(
            self.workdir / "sandbox", works=self.works, seed=self.seed, dirt_rate=0.0
        )
        self.sandbox.start()
        dagster_home = self.workdir / "dagster_home"
        dagster_home.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "deploy" / "dagster.yaml", dagster_home / "dagster.yaml")
        home = self.workdir / "home"
        self.env = {
            **os.environ,
            **self.sandbox.env,
            "DAGSTER_HOME": str(dagster_home),
            "CONSODAM_HOME": str(home),
            "CONSODAM_TABLES_PATH": str(home / "tables"),
            "CONSODAM_STORE_URL": f"sqlite:///{home / 'lineage.db'}",
            "PYTHONUNBUFFERED": "1",
            **dev_env(),
        }
        self._export_env()
        started = time.monotonic()
        self.start_service("dagster", dev_command(self.web_port))
        self.wait("the webserver answers", lambda: self._web_ok(), 180)
        self.record(
            "services up", time.monotonic() - started, 180, "`dg dev`: webserver, daemon, code server"
        )

    def start_production(self) -> None:
        bin_dir = find_pg_bin()
        if bin_dir is None:
            raise DeploymentFailed("PostgreSQL's initdb/pg_ctl are not on PATH nor in /usr/lib/postgresql")
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
        self._export_env()
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

    def _export_env(self) -> None:
        """The deployment's DAGSTER_*/CONSODAM_* in this process too (its instance and store are read here),
        each caller's own value kept for `stop` to put back."""
        for key, value in self.env.items():
            if key.startswith(("DAGSTER_", "CONSODAM_")):
                self._env_before.setdefault(key, os.environ.get(key))
                os.environ[key] = value

    def _restore_env(self) -> None:
        for key, value in self._env_before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self._env_before.clear()

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
        """One set of people for the whole deployment: no two changes touch the same work."""
        assert self.sandbox is not None
        if self._people is None:
            self._people = PeopleAtWork(self.sandbox, self.tables)
        return self._people

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
        raise DeploymentFailed(f"{what}: not within {bound_s:.0f} s (last seen: {last})")

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
            raise DeploymentFailed(f"{label}: {found.line()} {found.examples}")
        return found

    def settle(self, label: str, landed: Callable[[], Any], bound_s: float = HEAL_BOUND_S) -> float:
        """Wait until the change landed and the deployment is quiet; then the systems must be exact."""
        seconds = self.wait(f"{label}: the change lands", landed, bound_s)
        seconds += self.wait(f"{label}: the deployment goes quiet", self.quiet, bound_s)
        # A quiet moment may fall between the ingest and the edition run it wakes: be quiet twice.
        time.sleep(8)
        seconds += self.wait(f"{label}: the deployment stays quiet", self.quiet, bound_s) + 8
        return seconds

    # ---- stopping ----------------------------------------------------------------------------------

    def stop(self) -> dict[str, float]:
        """SIGTERM each service (the webserver and daemon first); how long each took to exit. The caller's
        own DAGSTER_*/CONSODAM_* are put back however stopping ends."""
        took: dict[str, float] = {}
        try:
            for name in ("webserver", "daemon", "code_server", "dagster"):
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
        finally:
            self._restore_env()
        return took


D = TypeVar("D", bound=Deployment)


@contextlib.contextmanager
def deployment(
    works: int,
    workdir: Path | None,
    say: Callable[[str], object] = print,
    topology: str = "production",
    seed: int = 5,
    kind: type[D] = Deployment,  # type: ignore[assignment]
) -> Iterator[D]:
    """A deployment that is stopped (every service, the sandboxes, PostgreSQL) however the block ends."""
    own = workdir is None
    folder = Path(tempfile.mkdtemp(prefix="consodam-deploy-")) if workdir is None else workdir
    deployed = kind(folder, works=works, seed=seed, say=say, topology=topology)
    try:
        deployed.start()
        yield deployed
    finally:
        deployed.stop()
        if own:
            shutil.rmtree(folder, ignore_errors=True)
