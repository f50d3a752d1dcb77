"""The deployment in deploy/: the Helm values validate against the chart's own schema, the compose file and
the instance files are what Dagster and Docker accept, the image installs the locked project, the code
server stops when told and is alone on its port, and the whole topology as processes heals from its faults
with every system exact (consodam_pipeline/deploy_check.py)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from dagster._core.instance.config import dagster_instance_config
from packaging.requirements import Requirement

from consodam_pipeline.deploy_check import run_check
from consodam_pipeline.ports import free_port
from consodam_pipeline.processes import descendants, port_answers
from consodam_pipeline.run_launcher import process_alive

ROOT = Path(__file__).parent.parent
DEPLOY = ROOT / "deploy"
CHART_SCHEMA = ROOT.parent / "shared" / "reference" / "dagster-helm" / "values.schema.json"
PG_ENV = {
    "DAGSTER_PG_HOST": "db",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_DB": "dagster",
    "DAGSTER_PG_USERNAME": "dagster",
    "DAGSTER_PG_PASSWORD": "x",
}
SIGTERM_BOUND_S = 10.0  # the code server exits this long after SIGTERM at most


def permissive(node: Any) -> Any:
    """The chart's schema with its references to Kubernetes' schemas (not available offline) open."""
    if isinstance(node, dict):
        return {
            k: permissive(v)
            for k, v in node.items()
            if not (k == "$ref" and isinstance(v, str) and v.startswith("http"))
        }
    if isinstance(node, list):
        return [permissive(v) for v in node]
    return node


def chart_errors(values: dict[str, Any]) -> list[str]:
    if not CHART_SCHEMA.exists():
        pytest.fail(f"{CHART_SCHEMA} is missing: ../shared must sit beside the repository")
    validator = jsonschema.Draft7Validator(permissive(json.loads(CHART_SCHEMA.read_text())))
    return [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(values)]


def test_helm_values_validate_against_the_charts_schema() -> None:
    values = yaml.safe_load((DEPLOY / "helm-values.yaml").read_text())
    assert chart_errors(values) == []
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
    assert values["dagsterDaemon"]["runMonitoring"]["enabled"] is True
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert "consodam_pipeline.definitions" in deployment["codeServerArgs"]
    assert values["additionalInstanceConfig"]["concurrency"]["pools"]["default_limit"] >= 1
    # The validator is live: a launcher the chart does not know, or a missing required block, is refused.
    broken = copy.deepcopy(values)
    broken["runLauncher"]["type"] = "LocalRunLauncher"
    del broken["dagsterDaemon"]["runCoordinator"]
    assert len(chart_errors(broken)) >= 2


def instance_from(text: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The instance file as Dagster reads and validates it."""
    for key, value in PG_ENV.items():
        monkeypatch.setenv(key, value)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text(text)
    config, _ = dagster_instance_config(str(home))
    return dict(config)


def test_the_postgres_instance_file_validates_and_matches_compose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    processes = instance_from((DEPLOY / "dagster.postgres.yaml").read_text(), tmp_path, monkeypatch)
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    docker = instance_from(compose["configs"]["instance"]["content"], tmp_path, monkeypatch)
    assert docker["run_launcher"]["class"] == "DockerRunLauncher"
    assert processes["run_launcher"]["class"] == "MonitoredRunLauncher"
    for block in ("storage", "concurrency", "run_retries", "run_monitoring", "retention", "telemetry"):
        assert processes[block] == docker[block], block
    storage = processes["storage"]["postgres"]["postgres_db"]
    assert all(isinstance(v, dict) and "env" in v for k, v in storage.items() if k != "scheme")


def test_the_compose_file_is_complete(tmp_path: Path) -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    compose = yaml.safe_load(text)
    services = compose["services"]
    assert {"postgresql", "migrate", "code_server", "webserver", "daemon"} <= set(services)
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, (name, dependency)
        for config in service.get("configs", []):
            assert config["source"] in compose["configs"], (name, config)
    images = {services[s]["image"] for s in ("migrate", "code_server", "webserver", "daemon")}
    assert len(images) == 1  # one image for the code location and Dagster's services
    assert services["migrate"]["build"]["dockerfile"] == "deploy/Dockerfile"
    # Runs in their containers get the same environment as the code server.
    instance = yaml.safe_load(compose["configs"]["instance"]["content"])
    consodam_env = set(compose["x-consodam-env"])
    assert set(instance["run_launcher"]["config"]["env_vars"]) == consodam_env
    workspace = yaml.safe_load(compose["configs"]["workspace"]["content"])
    assert workspace["load_from"][0]["grpc_server"]["host"] == "code_server"
    # No credential is written into the file: each comes from the env file.
    for key in ("POSTGRES_PASSWORD", "CONSONANCE_API_KEY", "OTDAM_CLIENT_SECRET"):
        assert f"${{{key}" in text
    example = dict(
        line.split("=", 1)
        for line in (DEPLOY / "compose.env.example").read_text().splitlines()
        if "=" in line
    )
    assert all(example[k] == "" for k in ("POSTGRES_PASSWORD", "CONSONANCE_API_KEY", "OTDAM_CLIENT_SECRET"))
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):
        env_file = tmp_path / "compose.env"
        env_file.write_text("\n".join(f"{k}={v or 'x'}" for k, v in example.items()))
        checked = subprocess.run(
            [
                "docker",
                "compose",
                "-f",
                str(DEPLOY / "compose.yaml"),
                "--env-file",
                str(env_file),
                "config",
                "-q",
            ],
            capture_output=True,
            text=True,
        )
        assert checked.returncode == 0, checked.stderr


def test_the_image_installs_the_locked_project() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = (ROOT / "uv.lock").read_text()
    syncs = [line for line in dockerfile.splitlines() if "uv sync" in line]
    assert syncs and all("--frozen" in line and "--no-dev" in line for line in syncs)
    for extra in (line.split("--extra ")[1].split()[0] for line in syncs if "--extra " in line):
        assert extra in project["optional-dependencies"]
        for requirement in project["optional-dependencies"][extra]:
            assert f'name = "{Requirement(requirement).name}"' in lock, requirement
    for line in dockerfile.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source
    command = json.loads(dockerfile.split("CMD ", 1)[1].strip())
    assert command[0] in project["scripts"] and command[1] == "code-server"


def ignoring_sigterm() -> None:
    """A parent that ignores SIGTERM (as some shells and supervisors do) hands that to what it starts."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def code_server(port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [str(Path(sys.executable).parent / "consodam"), "code-server", "--port", str(port)]
    return subprocess.Popen(
        command,
        env=env,
        cwd=ROOT,
        preexec_fn=ignoring_sigterm,
        start_new_session=True,
        stderr=subprocess.PIPE,
    )


def family(pid: int) -> set[int]:
    return {pid, *descendants(pid)}


def test_the_code_server_stops_on_sigterm_and_is_alone_on_its_port(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), "CONSODAM_HOME": str(tmp_path / "home")}
    (tmp_path / "dagster").mkdir()
    first = code_server(port, env)
    try:
        deadline = time.monotonic() + 120
        while not port_answers("127.0.0.1", port):
            assert first.poll() is None and time.monotonic() < deadline, "the code server did not come up"
            time.sleep(0.5)
        time.sleep(2)  # its gRPC child has loaded the code location
        processes = family(first.pid)
        assert len(processes) >= 2  # the proxy and the server it runs the code location in
        environ = Path(f"/proc/{first.pid}/environ").read_bytes().split(b"\0")
        grace = [
            int(v.split(b"=")[1]) for v in environ if v.startswith(b"DAGSTER_GRPC_SHUTDOWN_GRACE_PERIOD=")
        ]
        assert (
            grace and grace[0] + 5 <= SIGTERM_BOUND_S
        )  # a call in flight holds SIGTERM back this long at most
        refused = code_server(port, env)  # a second one on the same port is refused, saying why
        _, said = refused.communicate(timeout=60)
        assert refused.returncode != 0 and b"already served" in said
        started = time.monotonic()
        first.send_signal(signal.SIGTERM)  # although its parent ignored SIGTERM
        first.wait(SIGTERM_BOUND_S)
        took = time.monotonic() - started
        time.sleep(1)
        assert [p for p in processes if process_alive(p)] == [], "a process of the old server outlived it"
        assert took < SIGTERM_BOUND_S
        assert not port_answers("127.0.0.1", port)
        second = code_server(port, env)  # the restart: only the new one serves
        try:
            while not port_answers("127.0.0.1", port):
                assert second.poll() is None and time.monotonic() < deadline + 60
                time.sleep(0.5)
            assert all(not process_alive(p) for p in processes)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(SIGTERM_BOUND_S)
    finally:
        for child in (first,):
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)


@pytest.mark.timeout(1500)
def test_the_deployment_heals_from_every_fault(tmp_path: Path) -> None:
    """PostgreSQL, code server, daemon and webserver as processes; sensors alone load and sync; then a
    killed daemon, a killed run worker, PostgreSQL stopped 20 s and a restarted code server — after each,
    healed within its bound and every system exact; every service stops on SIGTERM; no secret leaks."""
    ours = ("DAGSTER_", "CONSODAM_")
    before = {k: v for k, v in os.environ.items() if k.startswith(ours)}
    steps = run_check(works=40, workdir=tmp_path / "deploy", say=print)
    # Its PostgreSQL's port and the store's URL must not outlive it in this process's later tests.
    assert {k: v for k, v in os.environ.items() if k.startswith(ours)} == before
    names = [s.name for s in steps]
    assert names[0] == "services up" and names[-1] == "every service stopped with SIGTERM"
    assert len(names) == 9
    assert all(s.seconds <= s.bound for s in steps), [(s.name, s.seconds, s.bound) for s in steps]
