"""Running consodam's assets in tests: resources pointed at a sandbox, stores in a temp dir."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from consodam_pipeline.clients.consonance import ConsonanceResource
from consodam_pipeline.clients.opentext_dam import OpenTextDamResource
from consodam_pipeline.defs.consonance.assets import title_metadata_snapshot
from consodam_pipeline.defs.consonance.checks import (
    editions_have_valid_unique_isbns,
    quarantined_title_records,
)
from consodam_pipeline.defs.dam.assets import dam_asset_inventory
from consodam_pipeline.defs.dam.checks import approvals_are_attributed, quarantined_dam_records
from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.store.tables import PolarsParquetIOManager
from consodam_tests.support import Sandbox

INGEST = [title_metadata_snapshot, dam_asset_inventory]
CHECKS = [
    editions_have_valid_unique_isbns,
    quarantined_title_records,
    approvals_are_attributed,
    quarantined_dam_records,
]


def resources(sandbox: Sandbox, home: Path, *, fast_retries: bool = True, **client: Any) -> dict[str, Any]:
    tuning: dict[str, Any] = {"retry_base_delay_s": 0.01} if fast_retries else {}
    tuning.update(client)
    return {
        "consonance": ConsonanceResource(
            url=sandbox.consonance_url, api_key=sandbox.env["CONSONANCE_API_KEY"], page_size=100, **tuning
        ),
        "dam": OpenTextDamResource(url=sandbox.dam_url, page_size=250, **tuning),
        "lineage": LineageStoreResource(url=f"sqlite:///{home / 'lineage.db'}"),
        "io_manager": PolarsParquetIOManager(base_path=str(home / "tables")),
    }


def ingest(
    sandbox: Sandbox,
    home: Path,
    instance: dg.DagsterInstance | None = None,
    *,
    full_refresh: bool = False,
    assets: list[Any] | None = None,
    **client: Any,
) -> dg.ExecuteInJobResult:
    selected = assets or INGEST
    config = {"full_refresh": full_refresh}
    run_config = {"ops": {a.key.to_python_identifier(): {"config": config} for a in selected}}
    return dg.materialize(
        INGEST,
        selection=selected,
        instance=instance,
        resources=resources(sandbox, home, **client),
        run_config=run_config,
    )


def table(home: Path, name: str) -> pl.DataFrame:
    return pl.read_parquet(home / "tables" / f"{name}.parquet")


def store(home: Path) -> LineageStore:
    return LineageStoreResource(url=f"sqlite:///{home / 'lineage.db'}").store()


def metadata(result: dg.ExecuteInJobResult, asset: str) -> dict[str, Any]:
    events = [e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == asset]
    return {k: v.value for k, v in events[-1].materialization.metadata.items()}


def edition_assets() -> list[Any]:
    from consodam_pipeline.defs.editions import edition_changes
    from consodam_pipeline.defs.links.assets import approved_version_links, consonance_asset_links
    from consodam_pipeline.defs.rights.assets import dam_access_restrictions, rights_matrix
    from consodam_pipeline.defs.tags.assets import dam_title_tags

    return [edition_changes, rights_matrix, dam_access_restrictions, dam_title_tags, approved_version_links,
            consonance_asset_links]  # fmt: skip


def all_definitions(sandbox: Sandbox, home: Path) -> dg.Definitions:
    from consodam_pipeline.defs.consonance.sensors import consonance_change_sensor
    from consodam_pipeline.defs.dam.sensors import dam_change_sensor

    return dg.Definitions(
        assets=[*INGEST, *edition_assets()],
        asset_checks=CHECKS,
        sensors=[consonance_change_sensor, dam_change_sensor],
        resources=resources(sandbox, home),
    )


def sync_partitions(
    sandbox: Sandbox,
    home: Path,
    instance: dg.DagsterInstance,
    keys: list[str],
    selection: list[Any] | None = None,
) -> dg.ExecuteInJobResult:
    """One run over the given partitions of the edition-level assets (a single-run backfill)."""
    from consodam_pipeline.defs.editions import period_keys

    ordered = [k for k in period_keys() if k in set(keys)]
    tags = {
        "dagster/asset_partition_range_start": ordered[0],
        "dagster/asset_partition_range_end": ordered[-1],
    }
    if len(ordered) == 1:
        tags = {"dagster/partition": ordered[0]}
    selected = selection or edition_assets()[1:]
    return dg.materialize(
        [*INGEST, *edition_assets()], selection=selected, instance=instance,
        resources=resources(sandbox, home), tags=tags,
    )  # fmt: skip
