"""Resources for every asset. Endpoints and credentials come from the environment via dg.EnvVar when set
(so secrets never appear in run config or the UI); unset, they point at the local sandboxes."""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from consodam_pipeline import endpoints
from consodam_pipeline.clients import consonance as cons
from consodam_pipeline.clients import opentext_dam as dam
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.store.tables import PolarsParquetIOManager
from consodam_pipeline.sync.partitions import step_executor


def env_or(name: str, default: Any) -> Any:
    return dg.EnvVar(name) if os.environ.get(name) else default


# Runs print INFO and above to the console (Dagster's default is DEBUG: a line per step event); the UI's
# event log keeps every event whatever the console shows.
console = dg.colored_console_logger.configured({"log_level": "INFO"})


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        executor=step_executor(),
        loggers={"console": console},
        resources={
            "consonance": cons.ConsonanceResource(
                url=env_or("CONSONANCE_URL", endpoints.CONSONANCE_URL),
                api_key=env_or("CONSONANCE_API_KEY", endpoints.CONSONANCE_KEY),
            ),
            "dam": dam.OpenTextDamResource(
                url=env_or("OTDAM_URL", endpoints.DAM_URL),
                tenant=env_or("OTDAM_TENANT", endpoints.DAM_TENANT),
                client_id=env_or("OTDAM_CLIENT_ID", endpoints.DAM_CLIENT_ID),
                client_secret=env_or("OTDAM_CLIENT_SECRET", endpoints.DAM_CLIENT_SECRET),
            ),
            "lineage": LineageStoreResource(url=env_or("CONSODAM_STORE_URL", "")),
            "io_manager": PolarsParquetIOManager(base_path=env_or("CONSODAM_TABLES_PATH", "")),
        },
    )
