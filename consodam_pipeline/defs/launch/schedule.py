"""The launch window moves with the calendar: every day some editions enter it and some leave it, though
nothing changed at either source. A daily schedule finds the periods holding those editions and records
the same period markers the ingest sensors record, so the edition graph (launch_collections with it)
re-materializes exactly those periods."""

import dagster as dg

from consodam_pipeline.derived.launch_plan import periods_moving
from consodam_pipeline.derived.rules import rules_in_force
from consodam_pipeline.store.tables import PolarsParquetIOManager, exists, read_parquet
from consodam_pipeline.sync.markers import change_markers
from consodam_pipeline.sync.probe import TITLES


class LaunchDay(dg.Config):
    day: str
    periods: list[str]


@dg.op(
    description="Records a period marker (edition_changes) for each period whose editions moved in or out of "
    "the launch window on the day."
)
def mark_launch_periods(context: dg.OpExecutionContext, config: LaunchDay) -> None:
    for marker in change_markers({period: ["launch window"] for period in config.periods}, day=config.day):
        context.log_event(marker)


@dg.job(
    description="The periods whose editions enter or leave the launch window today, marked for the edition graph."
)
def launch_window_job() -> None:
    mark_launch_periods()


@dg.schedule(
    job=launch_window_job,
    cron_schedule="10 0 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Daily: marks the periods whose editions enter or leave the launch window that day.",
)
def launch_window_schedule(
    context: dg.ScheduleEvaluationContext, io_manager: dg.ResourceParam[PolarsParquetIOManager]
) -> dg.RunRequest | dg.SkipReason:
    day = (context.scheduled_execution_time or dg.get_current_datetime()).date()
    path = io_manager.path_for(TITLES)
    if not exists(path):
        return dg.SkipReason("no title snapshot yet: the first ingest marks every period anyway")
    periods = periods_moving(read_parquet(path), rules_in_force().launch, day)
    if not periods:
        return dg.SkipReason(f"no edition enters or leaves the launch window on {day}")
    return dg.RunRequest(
        run_key=f"launch-window:{day}",
        run_config={"ops": {"mark_launch_periods": {"config": {"day": day.isoformat(), "periods": periods}}}},
        tags={"consodam/launch_day": day.isoformat()},
    )
