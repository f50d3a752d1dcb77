"""OpenLineage: real runs against the sandboxes, the run status sensors evaluated on them with the standard
file transport (OPENLINEAGE_CONFIG), every event checked against the OpenLineage RunEvent schema; a START and
a COMPLETE (or FAIL) per step, with datasets and facets, and no secret anywhere."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dagster as dg
import jsonschema
import pytest
from dagster._core.events import DagsterEventType

from consodam_pipeline.clients.consonance import ConsonanceResource
from consodam_pipeline.defs.lineage.openlineage import openlineage_on_failure, openlineage_on_success
from consodam_pipeline.domain.periods import period_keys
from consodam_pipeline.openlineage.events import FACET_SCHEMA
from consodam_tests.pipeline import INGEST, edition_assets, resources, sync_partitions
from consodam_tests.support import Sandbox, env

RUN_EVENT = json.loads((Path(__file__).parent / "openlineage_runevent.schema.json").read_text())
WRITES_FACET = json.loads(
    (Path(__file__).parents[1] / "docs" / "openlineage" / "ConsodamWritesRunFacet.json").read_text()
)


def derived_assets() -> list[Any]:
    wanted = ("rights_matrix", "approved_version_links", "consonance_asset_links")
    return [a for a in edition_assets() if a.key.to_user_string() in wanted]


DERIVED = derived_assets()


def sent(events_file: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]


def evaluate(sensor: Any, instance: dg.DagsterInstance, run_id: str, defs: dg.Definitions, res: dict) -> Any:
    status = (
        DagsterEventType.RUN_SUCCESS if sensor is openlineage_on_success else DagsterEventType.RUN_FAILURE
    )
    (record,) = instance.all_logs(run_id, of_type=status)
    assert record.dagster_event is not None
    context = dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_event=record.dagster_event,
        dagster_instance=instance,
        dagster_run=instance.get_run_by_id(run_id),  # type: ignore[arg-type]
        resources={k: v for k, v in res.items()},
        repository_def=defs.get_repository_def(),
    )
    return sensor(context)


@pytest.fixture
def ol_config(tmp_path: Path) -> Path:
    events_file = tmp_path / "openlineage.jsonl"
    config = tmp_path / "openlineage.yml"
    config.write_text(f"transport:\n  type: file\n  log_file_path: {events_file}\n  append: true\n")
    return config


def test_each_step_sends_start_and_complete_with_datasets_and_facets(
    fresh_sandbox: Sandbox, tmp_path: Path, ol_config: Path
) -> None:
    home = tmp_path / "home"
    res = resources(fresh_sandbox, home)
    defs = dg.Definitions(assets=[*INGEST, *edition_assets()], resources=res)
    events_file = tmp_path / "openlineage.jsonl"
    with dg.instance_for_test() as instance:
        ingest_run = dg.materialize(INGEST, instance=instance, resources=res)
        (derived,) = sync_partitions(fresh_sandbox, home, instance, period_keys(), DERIVED).results
        skipped = evaluate(openlineage_on_success, instance, ingest_run.run_id, defs, res)
        assert isinstance(skipped, dg.SkipReason) and "OPENLINEAGE_URL" in str(skipped.skip_message)
        assert not events_file.exists()  # off by default
        with env({"OPENLINEAGE_CONFIG": str(ol_config)}):
            evaluate(openlineage_on_success, instance, ingest_run.run_id, defs, res)
            evaluate(openlineage_on_success, instance, derived.run_id, defs, res)
    events = sent(events_file)
    for event in events:
        jsonschema.validate(event, RUN_EVENT)
    by_job: dict[str, list[str]] = {}
    for event in events:
        by_job.setdefault(event["job"]["name"], []).append(event["eventType"])
    assert by_job["title_metadata_snapshot"] == ["START", "COMPLETE"]
    assert by_job["dam_asset_inventory"] == ["START", "COMPLETE"]
    assert by_job["rights_matrix"] == ["START", "COMPLETE"]
    assert by_job["consonance_asset_links"] == ["START", "COMPLETE"]
    complete = {e["job"]["name"]: e for e in events if e["eventType"] == "COMPLETE"}
    start = {e["job"]["name"]: e for e in events if e["eventType"] == "START"}
    assert all(start[j]["run"]["runId"] == complete[j]["run"]["runId"] for j in complete)
    assert all(start[j]["eventTime"] <= complete[j]["eventTime"] for j in complete)

    snapshot = complete["title_metadata_snapshot"]
    assert (fresh_sandbox.consonance_url, "graphql/products") in {
        (d["namespace"], d["name"]) for d in snapshot["inputs"]
    }
    names = [d["name"] for d in snapshot["outputs"]]
    assert names[0].endswith("/tables/title_metadata_snapshot") and str(home / "lineage.db") in names
    fields = {f["name"] for f in snapshot["outputs"][0]["facets"]["schema"]["fields"]}
    assert {"isbn13", "title", "imprint", "sales_rights"} <= fields

    matrix = complete["rights_matrix"]
    assert {d["name"].rsplit("/", 1)[-1] for d in matrix["inputs"]} >= {
        "title_metadata_snapshot",
        "dam_asset_inventory",
    }
    lineage = matrix["outputs"][0]["facets"]["columnLineage"]["fields"]
    assert {(f["name"].rsplit("/", 1)[-1], f["field"]) for f in lineage["grant_until"]["inputFields"]} == {
        ("dam_asset_inventory", "license_until")
    }

    links = complete["consonance_asset_links"]
    assert (fresh_sandbox.consonance_url, "graphql/supportingResources") in {
        (d["namespace"], d["name"]) for d in links["outputs"]
    }
    facet = links["run"]["facets"]["consodam_writes"]
    jsonschema.validate({"consodam_writes": facet}, WRITES_FACET)
    assert facet["_schemaURL"] == FACET_SCHEMA and facet["counts"]["written"] > 0
    assert links["run"]["facets"]["parent"]["run"]["runId"] == derived.run_id

    text = events_file.read_text()
    secrets = [fresh_sandbox.env["CONSONANCE_API_KEY"], "sandbox-dam-secret"]
    assert not any(s in text for s in secrets)


def test_a_failed_step_sends_fail_with_its_error(sandbox: Sandbox, tmp_path: Path, ol_config: Path) -> None:
    home = tmp_path / "home"
    res = resources(sandbox, home)
    res["consonance"] = ConsonanceResource(url="http://127.0.0.1:9", api_key="k" * 32, max_attempts=1)
    defs = dg.Definitions(assets=INGEST, resources=res)
    with dg.instance_for_test() as instance:
        failed = dg.materialize(
            INGEST,
            selection=["title_metadata_snapshot"],
            instance=instance,
            resources=res,
            raise_on_error=False,
        )
        assert not failed.success
        with env({"OPENLINEAGE_CONFIG": str(ol_config)}):
            evaluate(openlineage_on_failure, instance, failed.run_id, defs, res)
    events = sent(tmp_path / "openlineage.jsonl")
    for event in events:
        jsonschema.validate(event, RUN_EVENT)
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    error = events[1]["run"]["facets"]["errorMessage"]["message"]
    assert "ApiError: POST /graphql failed after 1 attempt(s): connection failed" in error, error
