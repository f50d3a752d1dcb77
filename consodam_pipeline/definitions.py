"""The code location: everything under defs/, one folder per flow family. The rules file is read first, so a
bad one fails the code location at load with its one line (which file, which field, why), before any run."""

import functools
import os
from pathlib import Path

import dagster as dg

from consodam_pipeline.domain.packages import RulesError, load_rules


@dg.definitions
def defs() -> dg.Definitions:
    try:
        load_rules()
    except RulesError as exc:
        raise RulesError(str(exc)) from None  # its one line, raised here: nothing below it to show
    return _definitions(settings())


# Everything the definitions read from the environment is named with one of these (endpoints, credentials,
# the store, the executor, backfill ranges, sensor intervals, OpenLineage, the rules file).
SETTING_PREFIXES = ("CONSODAM_", "CONSONANCE_", "OTDAM_", "OPENLINEAGE_", "DAGSTER_")


def settings() -> frozenset[tuple[str, str]]:
    return frozenset((k, v) for k, v in os.environ.items() if k.startswith(SETTING_PREFIXES))


@functools.lru_cache(maxsize=4)
def _definitions(_settings: frozenset[tuple[str, str]]) -> dg.Definitions:
    """Built once per set of settings. Dagster asks a process for the definitions several times — seven in
    one `dagster asset materialize`, again in every step — and each build walks defs/ (~0.1 s)."""
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
