"""Running consodam's assets in tests: resources pointed at a sandbox, stores in a temp dir."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from consodam_pipeline.clients.consonance import ConsonanceResource
from consodam_pipeline.clients.opentext_dam import OpenTextDamResource
from consodam_pipeline.defs.ingest.inventory import dam_asset_inventory
from consodam_pipeline.defs.ingest.titles import title_metadata_snapshot
from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.store.tables import PolarsParquetIOManager
from consodam_pipeline.sync.report import add_counts
from consodam_tests.support import Sandbox

INGEST = [title_metadata_snapshot, dam_asset_inventory]


def resources(
    sandbox: Sandbox, home: Path, *, fast_retries: bool = True, store_url: str | None = None, **client: Any
) -> dict[str, Any]:
    """Resources on the sandbox; the lineage store a SQLite file under `home` unless `store_url` names one."""
    tuning: dict[str, Any] = {"retry_base_delay_s": 0.01} if fast_retries else {}
    tuning.update(client)
    return {
        "consonance": ConsonanceResource(
            url=sandbox.consonance_url, api_key=sandbox.env["CONSONANCE_API_KEY"], page_size=100, **tuning
        ),
        "dam": OpenTextDamResource(url=sandbox.dam_url, page_size=250, **tuning),
        "lineage": LineageStoreResource(url=store_url or f"sqlite:///{home / 'lineage.db'}"),
        "io_manager": PolarsParquetIOManager(base_path=str(home / "tables")),
    }


def ingest(
    sandbox: Sandbox,
    home: Path,
    instance: dg.DagsterInstance | None = None,
    *,
    full_refresh: bool = False,
    assets: list[Any] | None = None,
    store_url: str | None = None,
    **client: Any,
) -> dg.ExecuteInJobResult:
    selected = assets or INGEST
    config = {"full_refresh": full_refresh}
    run_config = {"ops": {a.key.to_python_identifier(): {"config": config} for a in selected}}
    return dg.materialize(
        INGEST,
        selection=selected,
        instance=instance,
        resources=resources(sandbox, home, store_url=store_url, **client),
        run_config=run_config,
    )


def table(home: Path, name: str) -> pl.DataFrame:
    return pl.read_parquet(home / "tables" / f"{name}.parquet")


def store(home: Path) -> LineageStore:
    return LineageStoreResource(url=f"sqlite:///{home / 'lineage.db'}").store()


def unnamed_events(home: Path) -> dict[str, list[str]]:
    """Ledger rows that do not name what their kind requires (domain/events.py): event type → what is missing,
    with an example row. Empty when every row names its edition (and asset, version and role)."""
    import sqlalchemy as sa

    from consodam_pipeline.domain.events import missing_names

    unnamed: dict[str, list[str]] = {}
    with store(home).engine.connect() as conn:
        for row in conn.execute(sa.text("SELECT * FROM audit_ledger")).mappings():
            if missing := missing_names(dict(row)):
                unnamed.setdefault(row["event_type"], [*missing, f"e.g. {row['event_id'][:12]}"])
    return unnamed


def event_types(home: Path) -> set[str]:
    import sqlalchemy as sa

    with store(home).engine.connect() as conn:
        return set(conn.execute(sa.text("SELECT DISTINCT event_type FROM audit_ledger")).scalars())


def metadata(result: dg.ExecuteInJobResult | Runs, asset: str) -> dict[str, Any]:
    """The asset's materialization metadata; over several runs, counts are summed (the last event of
    each run, since a run over several partitions repeats its metadata on each)."""
    merged: dict[str, Any] = {}
    for run in result.results if isinstance(result, Runs) else [result]:
        events = [e for e in run.get_asset_materialization_events() if e.asset_key.to_user_string() == asset]
        if events:
            add_counts(merged, {k: v.value for k, v in events[-1].materialization.metadata.items()})
    return merged


def edition_assets() -> list[Any]:
    from consodam_pipeline.defs.ingest.markers import edition_changes
    from consodam_pipeline.defs.launch.collections import launch_collections
    from consodam_pipeline.defs.links.approved_links import approved_version_links
    from consodam_pipeline.defs.links.consonance_links import consonance_asset_links
    from consodam_pipeline.defs.rights.matrix import rights_matrix
    from consodam_pipeline.defs.rights.restrictions import dam_access_restrictions
    from consodam_pipeline.defs.tags.title_tags import dam_title_tags
    from consodam_pipeline.defs.workflow.packages import title_asset_packages
    from consodam_pipeline.defs.workflow.production_files import consonance_production_files
    from consodam_pipeline.defs.workflow.review_tasks import dam_review_tasks
    from consodam_pipeline.defs.workflow.stages import consonance_stage_advances

    return [
        edition_changes,
        rights_matrix,
        dam_access_restrictions,
        dam_title_tags,
        approved_version_links,
        consonance_asset_links,
        title_asset_packages,
        consonance_stage_advances,
        dam_review_tasks,
        consonance_production_files,
        launch_collections,
    ]


def all_definitions(sandbox: Sandbox, home: Path) -> dg.Definitions:
    from consodam_pipeline.defs.ingest.sensors import consonance_change_sensor, dam_change_sensor

    return dg.Definitions(
        assets=[*INGEST, *edition_assets()],
        sensors=[consonance_change_sensor, dam_change_sensor],
        resources=resources(sandbox, home),
    )


@dataclass
class Runs:
    """The runs one call made (one per contiguous range of periods), read like one result."""

    results: list[dg.ExecuteInJobResult]

    @property
    def success(self) -> bool:
        return all(r.success for r in self.results)

    def get_asset_materialization_events(self) -> list[Any]:
        return [e for r in self.results for e in r.get_asset_materialization_events()]

    def get_asset_check_evaluations(self) -> list[Any]:
        return [e for r in self.results for e in r.get_asset_check_evaluations()]


def sync_partitions(
    sandbox: Sandbox,
    home: Path,
    instance: dg.DagsterInstance,
    keys: list[str],
    selection: list[Any] | None = None,
) -> Runs:
    """Exactly these partitions of the edition-level assets: one run per range of neighbouring periods
    (a single-run backfill when they are all neighbours)."""
    from consodam_pipeline.domain.periods import contiguous_ranges
    from consodam_pipeline.sync.partitions import range_tags

    selected = selection or edition_assets()[1:]
    return Runs(
        [
            dg.materialize(
                [*INGEST, *edition_assets()],
                selection=selected,
                instance=instance,
                resources=resources(sandbox, home),
                tags=range_tags(keys_in_range),
            )
            for keys_in_range in contiguous_ranges(keys)
        ]
    )


@dataclass
class EditionTick:
    """What the edition sensor asked for on one tick."""

    runs: list[dg.RunRequest]
    cursor: str | None

    @property
    def periods(self) -> list[str]:
        from consodam_pipeline.domain.periods import period_keys
        from consodam_pipeline.sync.edition_requests import run_periods

        keys = period_keys()
        return sorted({p for run in self.runs for p in run_periods(run.tags, keys)}, key=keys.index)

    @property
    def changed(self) -> list[dg.RunRequest]:
        """The runs asked for because of changes (not only for pending writes)."""
        return [run for run in self.runs if "changes" in run.tags.get("consodam/trigger", "")]


def edition_tick(
    instance: dg.DagsterInstance, sandbox: Sandbox, home: Path, cursor: str | None = None
) -> EditionTick:
    """One evaluation of the edition sensor, as the daemon runs it."""
    from consodam_pipeline.defs.automation import edition_sync_sensor

    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources=resources(sandbox, home))
    result = edition_sync_sensor(context)
    assert isinstance(result, dg.SensorResult)
    return EditionTick(list(result.run_requests or []), result.cursor)


def run_requested(
    instance: dg.DagsterInstance, sandbox: Sandbox, home: Path, runs: list[dg.RunRequest]
) -> list[dg.ExecuteInJobResult]:
    """Each requested run of the edition job, as the daemon would launch it (its tags select its periods)."""
    from consodam_pipeline.defs.jobs import consodam_editions

    definitions = dg.Definitions(
        assets=[*INGEST, *edition_assets()], jobs=[consodam_editions], resources=resources(sandbox, home)
    )
    job = definitions.resolve_job_def("consodam_editions")
    return [job.execute_in_process(instance=instance, tags=dict(run.tags)) for run in runs]


def code_location_edition_job() -> dg.JobDefinition:
    """The code location's consodam_editions job, as a process that reconstructs it (a celery worker) loads
    it: resources from the environment."""
    from consodam_pipeline.definitions import defs

    return defs().resolve_job_def("consodam_editions")
