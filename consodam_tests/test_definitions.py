"""The code location loads, validates, and its lineage matches the reviewed snapshot.

Set CONSODAM_UPDATE_SNAPSHOTS=1 to rewrite the snapshot after an intended change to the graph.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg

from consodam_pipeline.definitions import defs

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_graph.json"
ROOT = Path(__file__).parent.parent


def graph_summary() -> dict[str, Any]:
    loaded = defs()
    graph = loaded.resolve_asset_graph()
    assets: dict[str, Any] = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        condition = node.automation_condition
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "partitions": type(node.partitions_def).__name__ if node.partitions_def else None,
            "automation_condition": condition.get_label() or type(condition).__name__ if condition else None,
            "checks": sorted(c.name for c in node.check_keys),
            "materializable": node.is_materializable,
        }
    sensors = {
        s.name: {"default_status": s.default_status.value}
        for s in sorted(loaded.get_repository_def().sensor_defs, key=lambda s: s.name)
    }
    jobs = sorted(j.name for j in loaded.get_repository_def().get_all_jobs() if not j.name.startswith("__"))
    return {"assets": assets, "sensors": sensors, "jobs": jobs}


def test_asset_graph_matches_snapshot() -> None:
    current = graph_summary()
    if os.environ.get("CONSODAM_UPDATE_SNAPSHOTS"):
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert SNAPSHOT.exists(), (
        f"{SNAPSHOT} is missing: review the graph, then write it with CONSODAM_UPDATE_SNAPSHOTS=1"
    )
    assert current == json.loads(SNAPSHOT.read_text())


def test_every_sensor_runs_by_default() -> None:
    statuses = graph_summary()["sensors"]
    assert "edition_sync_sensor" in statuses
    assert {s["default_status"] for s in statuses.values()} == {dg.DefaultSensorStatus.RUNNING.value}


def test_definitions_validate_from_the_workspace() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_definitions_are_built_once_per_environment(monkeypatch: Any) -> None:
    """Dagster asks for them many times a process; a changed setting still gives new ones."""
    first = defs()
    assert defs() is first
    monkeypatch.setenv("CONSONANCE_URL", "http://127.0.0.1:1")
    elsewhere = defs()
    assert elsewhere is not first
    assert isinstance(elsewhere.resources["consonance"].url, dg.EnvVar)  # type: ignore[index]
    assert not isinstance(first.resources["consonance"].url, dg.EnvVar)  # type: ignore[index]


@dg.asset
def first_step() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"pid": os.getpid()})


@dg.asset(deps=[first_step])
def second_step() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"pid": os.getpid()})


def two_step_job() -> dg.JobDefinition:
    """Two assets, one after the other, on the code location's executor (reconstructable: a step process
    loads it again)."""
    from consodam_pipeline.sync.partitions import step_executor

    job = dg.define_asset_job("two_steps", executor_def=step_executor())
    return dg.Definitions(assets=[first_step, second_step], jobs=[job]).resolve_job_def("two_steps")


def test_a_run_of_one_step_runs_it_in_the_run_process_and_of_several_in_step_processes() -> None:
    """An asset materialized on its own runs where its run runs (no forkserver to wait for); a run of
    several steps runs each in a step process, as a run configured `in_process` does not."""
    from consodam_pipeline.sync.partitions import IN_PROCESS

    job = dg.reconstructable(two_step_job)
    here = os.getpid()
    with dg.instance_for_test() as instance:

        def pids(run: Any) -> dict[str, object]:
            assert run.success
            return {
                event.asset_key.to_user_string(): event.materialization.metadata["pid"].value
                for event in run.get_asset_materialization_events()
                if event.asset_key is not None
            }

        with dg.execute_job(job, instance, asset_selection=[dg.AssetKey("first_step")]) as alone:
            assert pids(alone) == {"first_step": here}
        with dg.execute_job(job, instance) as both:
            assert set(pids(both)) == {"first_step", "second_step"} and here not in pids(both).values()
        with dg.execute_job(job, instance, run_config=IN_PROCESS) as told:
            assert pids(told) == {"first_step": here, "second_step": here}


def test_steps_fork_from_a_preloaded_server() -> None:
    """Every job but a celery one runs its steps as processes forked from a forkserver that has already
    imported every definition module (so a step does not import them again)."""
    repository = defs().get_repository_def()
    assert {job.executor_def.name for job in repository.get_all_jobs()} == {"multiprocess"}
    probe = (
        "import sys, consodam_pipeline.preload;"
        "print(sorted(m for m in sys.modules if m.startswith('consodam_pipeline.defs.')))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert loaded.returncode == 0, loaded.stderr
    files = sorted((ROOT / "consodam_pipeline" / "defs").rglob("*.py"))
    modules = {
        "consodam_pipeline." + ".".join(f.relative_to(ROOT / "consodam_pipeline").with_suffix("").parts)
        for f in files
        if f.name != "__init__.py"
    }
    assert modules <= set(json.loads(loaded.stdout.replace("'", '"')))
