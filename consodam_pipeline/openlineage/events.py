"""OpenLineage run events for one Dagster run: a START and a COMPLETE (or FAIL) per step, each step an
OpenLineage job named after its asset, with its inputs (upstream tables, the Consonance and DAM APIs it read)
and outputs (its table, the API it wrote, the lineage store), the schema and column-lineage facets from the
asset's metadata, and the `consodam_writes` run facet with the ledger and write counts.

Built from plain data (StepRecord), so the mapping is tested without a Dagster instance.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

import attr
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import (
    column_lineage_dataset,
    error_message_run,
    job_type_job,
    parent_run,
    schema_dataset,
)
from openlineage.client.generated.base import RunFacet

PRODUCER = "urn:consodam:0.1.0"
NAMESPACE = "consodam"
FACET_SCHEMA = "urn:consodam:openlineage:ConsodamWritesRunFacet:1-0-0#/$defs/ConsodamWritesRunFacet"
# Metadata that counts what a materialization changed: what the custom facet carries.
COUNT_KEYS = frozenset(
    {
        "written",
        "created",
        "updated",
        "removed",
        "replaced",
        "already_right",
        "unchanged",
        "failed",
        "failed_this_run",
        "failures",
        "pending",
        "pending_failures",
        "persistent",
        "duplicates_removed",
        "manual_changes_overwritten",
        "ledger_events",
        "added",
        "changed",
        "quarantined",
        "rows",
    }
)


@attr.define
class ConsodamWritesRunFacet(RunFacet):
    """What the step changed: its write and ledger counts (schema in docs/openlineage/)."""

    asset: str = attr.field(default="")
    partitions: list[str] = attr.field(factory=list)
    counts: dict[str, int] = attr.field(factory=dict)

    _additional_skip_redact: ClassVar[list[str]] = ["asset", "partitions", "counts"]

    @staticmethod
    def _get_schema() -> str:
        return FACET_SCHEMA


@dataclass(frozen=True)
class DatasetRef:
    namespace: str
    name: str


@dataclass
class StepRecord:
    """One step of a Dagster run, as the event log tells it."""

    step_key: str
    asset: str
    started_at: datetime
    ended_at: datetime
    succeeded: bool
    partitions: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)
    inputs: list[DatasetRef] = field(default_factory=list)
    outputs: list[DatasetRef] = field(default_factory=list)
    upstream_tables: dict[str, DatasetRef] = field(default_factory=dict)  # asset name → its table
    error: str | None = None


def step_run_id(dagster_run_id: str, step_key: str) -> str:
    """The same step of the same run always maps to the same OpenLineage run."""
    return str(uuid.uuid5(uuid.UUID(dagster_run_id), step_key))


def run_events(
    dagster_run_id: str, dagster_job: str, steps: Sequence[StepRecord], namespace: str = NAMESPACE
) -> list[RunEvent]:
    events = []
    for step in steps:
        run_id = step_run_id(dagster_run_id, step.step_key)
        job = Job(namespace=namespace, name=step.asset, facets=_job_facets())
        parent = parent_run.ParentRunFacet(
            run=parent_run.Run(runId=dagster_run_id),
            job=parent_run.Job(namespace=namespace, name=dagster_job),
            producer=PRODUCER,
        )
        inputs = [InputDataset(namespace=d.namespace, name=d.name) for d in step.inputs]
        outputs = [_output(d, step, i == 0) for i, d in enumerate(step.outputs)]
        start_facets: dict[str, Any] = {"parent": parent}
        events.append(_event(RunState.START, step.started_at, run_id, job, inputs, outputs, start_facets))
        end_facets: dict[str, Any] = {
            "parent": parent,
            "consodam_writes": ConsodamWritesRunFacet(
                asset=step.asset, partitions=step.partitions, counts=counts(step.metadata), producer=PRODUCER
            ),
        }
        if not step.succeeded:
            end_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=step.error or "step failed", programmingLanguage="python", producer=PRODUCER
            )
        state = RunState.COMPLETE if step.succeeded else RunState.FAIL
        events.append(_event(state, step.ended_at, run_id, job, inputs, outputs, end_facets))
    return events


def _event(
    state: RunState,
    at: datetime,
    run_id: str,
    job: Job,
    inputs: list[InputDataset],
    outputs: list[OutputDataset],
    facets: dict[str, Any],
) -> RunEvent:
    return RunEvent(
        eventType=state,
        eventTime=at.isoformat(),
        run=Run(runId=run_id, facets=facets),
        job=job,
        inputs=inputs,
        outputs=outputs,
        producer=PRODUCER,
    )


def _job_facets() -> dict[str, Any]:
    return {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration="DAGSTER", jobType="ASSET", producer=PRODUCER
        )
    }


def _output(dataset: DatasetRef, step: StepRecord, is_table: bool) -> OutputDataset:
    """The asset's own table carries its schema and column lineage; the systems it wrote carry none."""
    facets: dict[str, Any] = {}
    if is_table:
        schema = step.metadata.get("dagster/column_schema")
        if schema is not None:
            facets["schema"] = schema_dataset.SchemaDatasetFacet(
                fields=[
                    schema_dataset.SchemaDatasetFacetFields(
                        name=c.name, type=c.type, description=c.description
                    )
                    for c in schema.columns
                ],
                producer=PRODUCER,
            )
        lineage = step.metadata.get("dagster/column_lineage")
        if lineage is not None:
            facets["columnLineage"] = _column_lineage(lineage, step.upstream_tables)
    return OutputDataset(namespace=dataset.namespace, name=dataset.name, facets=facets)


def _column_lineage(lineage: Any, tables: Mapping[str, DatasetRef]) -> Any:
    fields = {}
    for column, deps in lineage.deps_by_column.items():
        inputs = [
            column_lineage_dataset.InputField(
                namespace=tables[d.asset_key.to_user_string()].namespace,
                name=tables[d.asset_key.to_user_string()].name,
                field=d.column_name,
            )
            for d in deps
            if d.asset_key.to_user_string() in tables
        ]
        fields[column] = column_lineage_dataset.Fields(inputFields=inputs)
    return column_lineage_dataset.ColumnLineageDatasetFacet(fields=fields, producer=PRODUCER)


def counts(metadata: Mapping[str, Any]) -> dict[str, int]:
    return {
        key: int(value)
        for key, value in metadata.items()
        if key in COUNT_KEYS and isinstance(value, int | float) and not isinstance(value, bool)
    }
