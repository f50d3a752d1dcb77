"""Steps spread without Kubernetes: with CONSODAM_CELERY_BROKER set, the edition job's steps go through
Redis (Debian's redis-server) to two `consodam celery-worker` processes, and the run leaves the ledger,
the tables and both systems exactly as the default executor leaves them on an identical catalog."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest

from consodam_pipeline.ports import free_port
from consodam_pipeline.processes import Service, port_answers
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.verify import consonance_holdings, holdings
from consodam_tests.pipeline import ingest
from consodam_tests.support import Sandbox, env
from consodam_tests.test_concurrency import ledger_facts, review_tasks, tables

ROOT = Path(__file__).parent.parent


def redis_server() -> str:
    found = shutil.which("redis-server")
    if found is None:
        message = "redis-server not found: sudo apt-get install -y --no-install-recommends redis-server"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    return found


RUNNER = """
import sys
import dagster as dg
from consodam_pipeline.domain.periods import period_keys
from consodam_pipeline.sync.partitions import range_tags
from consodam_tests.pipeline import code_location_edition_job

with dg.DagsterInstance.get() as instance:
    result = dg.execute_job(
        dg.reconstructable(code_location_edition_job), instance=instance, tags=range_tags(period_keys())
    )
    print("executor:", result.job_def.executor_def.name)
    sys.exit(0 if result.success else 1)
"""


def run_editions(sandbox: Sandbox, home: Path, dagster_home: Path, extra: dict[str, str]) -> str:
    """The code location's edition job over every period in a process of its own, on a persistent instance,
    configured from the environment as a deployment is; the executor it ran with."""
    settings = {
        **sandbox.env,
        "CONSODAM_STORE_URL": f"sqlite:///{home / 'lineage.db'}",
        "CONSODAM_TABLES_PATH": str(home / "tables"),
        "DAGSTER_HOME": str(dagster_home),
        **extra,
    }
    with env(settings), dg.DagsterInstance.get() as instance:
        ingest(sandbox, home, instance)
    ran = subprocess.run(
        [sys.executable, "-c", RUNNER],
        env={**os.environ, **settings},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    return ran.stdout.split("executor:")[-1].strip()


def wait_until_ready(workers: list[Service], logs: Path, bound_s: float = 120) -> None:
    deadline = time.monotonic() + bound_s
    for worker in workers:
        log = logs / f"{worker.name}.log"
        while not (log.exists() and "ready." in log.read_text()):
            assert worker.alive(), log.read_text()[-2000:] if log.exists() else worker.name
            assert time.monotonic() < deadline, f"{worker.name} not ready within {bound_s:.0f} s"
            time.sleep(0.5)


@pytest.mark.timeout(900)
def test_two_celery_workers_run_the_edition_job_to_the_same_result(tmp_path: Path) -> None:
    server = redis_server()
    port = free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    leaves = {}
    redis = Service(
        "redis", [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    ).start()
    try:
        for label in ("default executor", "celery"):
            sandbox = Sandbox(tmp_path / label / "sandbox", works=30, dirt_rate=0.0).start()
            home, dagster_home = tmp_path / label / "home", tmp_path / label / "dagster"
            dagster_home.mkdir(parents=True)
            workers: list[Service] = []
            try:
                extra = {"CONSODAM_CELERY_BROKER": broker} if label == "celery" else {}
                if extra:
                    assert port_answers("127.0.0.1", port)
                    worker_env = {
                        **os.environ,
                        **sandbox.env,
                        "CONSODAM_STORE_URL": f"sqlite:///{home / 'lineage.db'}",
                        "CONSODAM_TABLES_PATH": str(home / "tables"),
                        "CONSODAM_HOME": str(home),
                        "DAGSTER_HOME": str(dagster_home),
                        **extra,
                    }
                    consodam = str(Path(sys.executable).parent / "consodam")
                    workers = [
                        Service(
                            name,
                            [consodam, "celery-worker", "--name", name],
                            env=worker_env,
                            cwd=ROOT,
                            log=tmp_path / f"{name}.log",
                        ).start()
                        for name in ("w1", "w2")
                    ]
                    wait_until_ready(workers, tmp_path)
                executor = run_editions(sandbox, home, dagster_home, extra)
                assert executor == (
                    "celery" if extra else "multiprocess"
                )  # forked from the preloaded forkserver
                found = holdings(
                    sandbox,
                    home / "tables",
                    LineageStoreResource(url=f"sqlite:///{home / 'lineage.db'}").store(),
                )
                assert found.exact and found.pending == 0, found.line()
                leaves[label] = (
                    consonance_holdings(sandbox),
                    review_tasks(sandbox),
                    ledger_facts(f"sqlite:///{home / 'lineage.db'}"),
                    tables(home),
                )
                if workers:
                    done = sum(
                        (tmp_path / f"{w.name}.log").read_text().count("succeeded in") for w in workers
                    )
                    assert done >= 10  # every step ran on a worker, none in the run's own process
            finally:
                for worker in workers:
                    worker.stop()
                sandbox.stop()
    finally:
        redis.stop()
    plain, spread = leaves["default executor"], leaves["celery"]
    assert plain[0] == spread[0] and sum(plain[0].values()) > 0
    assert plain[1] == spread[1]
    assert plain[2] == spread[2] and sum(plain[2].values()) > 0
    for name in plain[3]:
        assert plain[3][name].equals(spread[3][name]), name


def test_workers_starting_together_create_the_instance_once(tmp_path: Path) -> None:
    """`dagster-celery worker start` opens the instance first thing; two workers starting at once on a new
    SQLite DAGSTER_HOME must leave one storage that every later process opens."""
    opens = "from consodam_pipeline.processes import open_instance_once; open_instance_once()"
    for round_ in range(3):
        settings = {**os.environ, "DAGSTER_HOME": str(tmp_path / f"dagster-{round_}")}
        starting = [
            subprocess.Popen([sys.executable, "-c", opens], env=settings, cwd=ROOT, stderr=subprocess.PIPE)
            for _ in range(2)
        ]
        for worker in starting:
            _, errors = worker.communicate(timeout=120)
            assert worker.returncode == 0, errors.decode()[-2000:]
        with env({"DAGSTER_HOME": settings["DAGSTER_HOME"]}), dg.DagsterInstance.get() as instance:
            assert instance.get_runs_count() == 0
