"""How Dagster runs the edition graph: one partition per publication period, a marker per period that
changed (`edition_changes`, recorded by the ingest: sync/markers.py), and what every edition-level asset
shares."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import dagster as dg

from consodam_pipeline.domain.periods import period_keys

if TYPE_CHECKING:  # Dagster's executor interface names these types in modules of its own
    from dagster._core.definitions.executor_definition import ExecutorRequirement
    from dagster._core.execution.context.system import PlanOrchestrationContext
    from dagster._core.execution.plan.plan import ExecutionPlan
    from dagster._core.execution.retries import RetryMode
    from dagster._core.execution.step_dependency_config import StepDependencyConfig

publication_periods = dg.StaticPartitionsDefinition(period_keys())
EDITION_CHANGES = dg.AssetKey("edition_changes")
# A retried run runs every step again: writes are planned from what the systems show, so a step that had
# finished plans nothing, and a run killed after its last step is retried rather than refused.
RETRY_ALL_STEPS = {"dagster/retry_strategy": "ALL_STEPS"}


RANGE_SETTING = "CONSODAM_BACKFILL_RANGE"


def periods_per_run() -> int | None:
    """CONSODAM_BACKFILL_RANGE: how many periods one run of a backfill covers; unset or 0, all of them (one
    run, best on one machine). On a cluster, ranges of N periods run side by side as separate runs."""
    text = os.environ.get(RANGE_SETTING, "0").strip() or "0"
    if not text.isdigit():
        raise ValueError(f"{RANGE_SETTING}={text!r}: expected a whole number of periods per run (0: one run)")
    return int(text) or None


def backfill_policy() -> dg.BackfillPolicy:
    per_run = periods_per_run()
    return dg.BackfillPolicy.single_run() if per_run is None else dg.BackfillPolicy.multi_run(per_run)


CELERY_BROKER = "CONSODAM_CELERY_BROKER"
CELERY_BACKEND = "CONSODAM_CELERY_BACKEND"


def celery_settings() -> dict[str, Any] | None:
    """The celery executor's settings when CONSODAM_CELERY_BROKER names a broker (redis://host:6379/0):
    each step of an edition run then goes to the workers (`consodam celery-worker`) on any machine. The
    results go to CONSODAM_CELERY_BACKEND, else to the broker."""
    if not os.environ.get(CELERY_BROKER):
        return None
    backend = CELERY_BACKEND if os.environ.get(CELERY_BACKEND) else CELERY_BROKER
    return {"broker": {"env": CELERY_BROKER}, "backend": {"env": backend}}


PRELOAD = "consodam_pipeline.preload"


SMALL_RUN_PERIODS = 3  # a run over this many periods or fewer runs its steps in the run's own process


STEP_PROCESSES = {"multiprocess": {"start_method": {"forkserver": {"preload_modules": [PRELOAD]}}}}


class OneStepInProcess(dg.Executor):
    """Step processes for a run of several steps; the run's own process for a run of one step, which has
    nothing to run beside it: a step process first waits for a forkserver to start and import every
    definition (`dagster asset materialize --select title_metadata_snapshot` at 20k works took 11.6-12.3 s
    with one, 8.9-9.9 s in process)."""

    def __init__(self, several: dg.Executor, one: dg.Executor) -> None:
        self.several, self.one = several, one

    @property
    def retries(self) -> RetryMode:
        return self.several.retries

    @property
    def step_dependency_config(self) -> StepDependencyConfig:
        return self.several.step_dependency_config

    def execute(self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan) -> Any:
        chosen = self.one if len(execution_plan.step_keys_to_execute) == 1 else self.several
        return chosen.execute(plan_context, execution_plan)


def _default_executor(init_context: dg.InitExecutorContext, config: dict[str, Any]) -> dg.Executor:
    """Dagster's own executor (multiprocess or in process) as `config` chooses, its defaults filled in
    by its own schema (as a run's config would be)."""
    from dagster._config import process_config

    default = dg.multi_or_in_process_executor
    processed = process_config(default.config_schema.config_type, config)
    assert processed.success and processed.value is not None, processed.errors
    context = init_context._replace(executor_def=default, executor_config=processed.value)
    return default.executor_creation_fn(context)  # type: ignore[misc]


def _requirements(config: Mapping[str, object]) -> Sequence[ExecutorRequirement]:
    return [] if config["in_process"] else dg.multiple_process_executor_requirements()


@dg.executor(
    name="multiprocess",
    config_schema={
        "in_process": dg.Field(
            bool, default_value=False, description="Run the steps in the run's process, one at a time."
        )
    },
    requirements=_requirements,
)
def consodam_executor(init_context: dg.InitExecutorContext) -> dg.Executor:
    in_process = _default_executor(init_context, {"in_process": {}})
    if init_context.executor_config["in_process"]:
        return in_process
    return OneStepInProcess(_default_executor(init_context, STEP_PROCESSES), in_process)


def step_executor() -> dg.ExecutorDefinition:
    """Every job's default: Dagster's multiprocess executor, its step processes forked from a forkserver
    that has imported Dagster, polars and every definition once (`consodam_pipeline.preload`); a spawned
    step imports all of it again (~2 s before each step of a run; a forked one starts in ~0.4 s). A run of
    one step (an asset materialized on its own) runs it in the run's process (`OneStepInProcess`). A run
    configured `in_process: true` runs its steps one after another in its own process: what the sensors
    ask for a change (one ingest, or the editions of a few periods) is done before a forkserver would have
    started."""
    return consodam_executor


IN_PROCESS: dict[str, Any] = {"execution": {"config": {"in_process": True}}}


def small_run_config(periods: int | None = None) -> dict[str, Any]:
    """The run config of a run the sensors ask for: in the run's own process when it is small. An ingest
    (`periods` None) always is; the editions of a few periods are unless celery spreads the edition job's
    steps (its executor has no such setting)."""
    if periods is None:
        return IN_PROCESS
    return IN_PROCESS if periods <= SMALL_RUN_PERIODS and celery_settings() is None else {}


def edition_executor() -> dg.ExecutorDefinition | None:
    """The edition job's executor: Dagster's default (steps as processes of the run), or celery."""
    settings = celery_settings()
    if settings is None:
        return None
    from dagster_celery import celery_executor  # the `deploy` extra: only a celery deployment needs it

    return celery_executor.configured(settings)


def by_period() -> dict[str, Any]:
    """What every edition-level asset shares: the period partitions and the backfill policy (one run, or
    ranges of CONSODAM_BACKFILL_RANGE periods). Runs come from the edition sensor (a change, or pending
    writes), one per range of periods."""
    return {"partitions_def": publication_periods, "backfill_policy": backfill_policy()}


def period_asset(**spec: Any) -> Any:
    """`dg.asset` for an edition-level asset. Single-run backfills are how this graph runs (README, "The
    edition graph"); Dagster flags `backfill_policy` as beta each time an asset is declared with it, which
    would open every command's output with the same warning, so the declaration is made without it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)
        return dg.asset(**spec)


def range_tags(keys: list[str]) -> dict[str, str]:
    """Run tags that select exactly this range of neighbouring periods."""
    if len(keys) == 1:
        return {"dagster/partition": keys[0]}
    return {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
