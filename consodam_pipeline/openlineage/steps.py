"""What a finished run sends to OpenLineage: its steps, with the datasets each read and wrote (tables, the APIs
of both systems, the lineage store), as START and COMPLETE/FAIL run events (see events.py).

Configured the standard way: `OPENLINEAGE_URL` (HTTP, with `OPENLINEAGE_API_KEY`) or `OPENLINEAGE_CONFIG` (a
YAML file naming any transport); `OPENLINEAGE_NAMESPACE` names the namespace (default "consodam"). Off when
neither is set: the sensors skip, saying so. Built on openlineage-python rather than dagster-openlineage,
whose sensor sends no input datasets, no datasets for external systems and no custom facets.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
from dagster._core.events import DagsterEventType

from consodam_pipeline.clients.consonance import ConsonanceResource
from consodam_pipeline.clients.opentext_dam import OpenTextDamResource
from consodam_pipeline.openlineage.events import NAMESPACE, DatasetRef, StepRecord, run_events
from consodam_pipeline.store.access import redact
from consodam_pipeline.store.engine import store_url
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.store.tables import PolarsParquetIOManager
from consodam_pipeline.sync.report import step_failure

# What each system-facing asset reads or writes there. An ingest asset reads its system; any other asset of
# a system kind writes to it (what it names here), reading the others it needs.
SYSTEM_KINDS = {"consonance": "consonance", "opentext": "dam"}
READS = {"consonance": "graphql/products", "dam": "otmmapi/v6/assets"}
WRITES = {
    "consonance_asset_links": "graphql/supportingResources",
    "consonance_stage_advances": "graphql/projectStages",
    "consonance_production_files": "graphql/productionFiles",
    "dam_access_restrictions": "otmmapi/v6/assets/security_policies",
    "dam_title_tags": "otmmapi/v6/assets/metadata",
    "dam_review_tasks": "otmmapi/v6/workflow/tasks",
    "launch_collections": "otmmapi/v6/collections",
}
READ_ONLY = {"dam_usage_log": "otmmapi/v6/usage"}
STEP_EVENTS = {
    DagsterEventType.STEP_START,
    DagsterEventType.STEP_SUCCESS,
    DagsterEventType.STEP_FAILURE,
    DagsterEventType.ASSET_MATERIALIZATION,
}


def configured() -> bool:
    if os.environ.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
        return False
    return bool(os.environ.get("OPENLINEAGE_URL") or os.environ.get("OPENLINEAGE_CONFIG"))


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def store_dataset(url: str) -> DatasetRef:
    """The lineage store, named the OpenLineage way for PostgreSQL, by its file for SQLite; no password."""
    parts = urlsplit(url.replace("postgresql+psycopg2", "postgresql"))
    if parts.scheme.startswith("postgres"):
        return DatasetRef(
            f"postgres://{parts.hostname}:{parts.port or 5432}", f"{parts.path.strip('/')}.consodam"
        )
    return DatasetRef("file", redact(url).split(":///", 1)[-1])


class Datasets:
    """Where each asset's data lives, from the resources the code location runs with."""

    def __init__(
        self,
        consonance: ConsonanceResource,
        dam: OpenTextDamResource,
        lineage: LineageStoreResource,
        io_manager: PolarsParquetIOManager,
    ) -> None:
        self.systems = {"consonance": origin(consonance.url), "dam": origin(dam.url)}
        self.store = store_dataset(lineage.url or store_url())
        self.io_manager = io_manager

    def table(self, key: dg.AssetKey) -> DatasetRef:
        return DatasetRef("file", self.io_manager.path_for(key).removesuffix(".parquet"))

    def of_step(self, assets: list[dg.AssetKey], graph: Any) -> tuple[list[DatasetRef], list[DatasetRef]]:
        inputs: list[DatasetRef] = []
        outputs = [self.table(k) for k in assets]
        for key in assets:
            node = graph.get(key) if graph is not None and graph.has(key) else None
            if node is None:
                continue
            inputs += [self.table(p) for p in sorted(node.parent_keys) if p not in assets]
            self._systems(key.to_user_string(), node, inputs, outputs)
            if "lineage" in _resource_keys(graph, key):
                outputs.append(self.store)
        return _unique(inputs), _unique(outputs)

    def _systems(self, name: str, node: Any, inputs: list[DatasetRef], outputs: list[DatasetRef]) -> None:
        kinds = {SYSTEM_KINDS[k] for k in node.kinds if k in SYSTEM_KINDS}
        if name in READ_ONLY:
            inputs += [DatasetRef(self.systems[s], READ_ONLY[name]) for s in kinds]
        elif node.group_name == "ingest":
            inputs += [DatasetRef(self.systems[s], READS[s]) for s in kinds]
        else:
            outputs += [DatasetRef(self.systems[s], WRITES.get(name, READS[s])) for s in kinds]


def _resource_keys(graph: Any, key: dg.AssetKey) -> set[str]:
    for assets_def in graph.assets_defs:
        if key in assets_def.keys:
            return set(assets_def.required_resource_keys)
    return set()


def _unique(refs: Iterable[DatasetRef]) -> list[DatasetRef]:
    return list(dict.fromkeys(refs))


def steps_of(instance: dg.DagsterInstance, run_id: str) -> dict[str, dict[str, Any]]:
    """step key → its start, end, outcome, error and materializations, from the run's event log."""
    steps: dict[str, dict[str, Any]] = {}
    for entry in instance.all_logs(run_id, of_type=STEP_EVENTS):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        step = steps.setdefault(event.step_key, {"assets": [], "metadata": {}, "partitions": []})
        at = datetime.fromtimestamp(entry.timestamp, UTC)
        kind = event.event_type
        if kind == DagsterEventType.STEP_START:
            step["started_at"] = at
        elif kind in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
            step.update(ended_at=at, succeeded=kind == DagsterEventType.STEP_SUCCESS)
            if kind == DagsterEventType.STEP_FAILURE:
                step["error"] = redact(step_failure(event))
        else:
            materialization = entry.asset_materialization
            assert materialization is not None
            if materialization.asset_key not in step["assets"]:
                step["assets"].append(materialization.asset_key)
            if materialization.partition:
                step["partitions"].append(materialization.partition)
            step["metadata"].update({k: v.value for k, v in materialization.metadata.items()})
    return steps


def step_records(context: dg.RunStatusSensorContext, datasets: Datasets) -> list[StepRecord]:
    repository = context.repository_def
    graph = repository.asset_graph if repository is not None else None
    records = []
    for step_key, step in steps_of(context.instance, context.dagster_run.run_id).items():
        assets = step["assets"] or (
            [dg.AssetKey(step_key)] if graph is not None and graph.has(dg.AssetKey(step_key)) else []
        )
        if not assets or "ended_at" not in step:
            continue
        inputs, outputs = datasets.of_step(assets, graph)
        records.append(
            StepRecord(
                step_key=step_key,
                asset=step_key,
                started_at=step.get("started_at", step["ended_at"]),
                ended_at=step["ended_at"],
                succeeded=step["succeeded"],
                partitions=sorted(set(step["partitions"])),
                metadata=step["metadata"],
                inputs=inputs,
                outputs=outputs,
                upstream_tables={k.to_user_string(): datasets.table(k) for k in _upstream(assets, graph)},
                error=step.get("error"),
            )
        )
    return records


def _upstream(assets: list[dg.AssetKey], graph: Any) -> set[dg.AssetKey]:
    if graph is None:
        return set()
    return {p for k in assets if graph.has(k) for p in graph.get(k).parent_keys}


def emit_run(
    context: dg.RunStatusSensorContext,
    consonance: ConsonanceResource,
    dam: OpenTextDamResource,
    lineage: LineageStoreResource,
    io_manager: PolarsParquetIOManager,
) -> dg.SkipReason | None:
    if not configured():
        return dg.SkipReason(
            "OpenLineage is off: set OPENLINEAGE_URL or OPENLINEAGE_CONFIG to send run events"
        )
    from openlineage.client import OpenLineageClient

    run = context.dagster_run
    records = step_records(context, Datasets(consonance, dam, lineage, io_manager))
    events = run_events(run.run_id, run.job_name, records, os.environ.get("OPENLINEAGE_NAMESPACE", NAMESPACE))
    client = OpenLineageClient()
    for event in events:
        client.emit(event)
    context.log.info(
        f"sent {len(events)} OpenLineage events for {len(records)} steps of run {run.run_id[:8]}"
    )
    return None
