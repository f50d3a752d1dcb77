"""The code location: everything under defs/, one folder per flow family. The rules file is read first, so a
bad one fails the code location at load with its one line (which file, which field, why), before any run."""

from pathlib import Path

import dagster as dg

from consodam_pipeline.domain.packages import RulesError, load_rules


@dg.definitions
def defs() -> dg.Definitions:
    try:
        load_rules()
    except RulesError as exc:
        raise RulesError(str(exc)) from None  # its one line, raised here: nothing below it to show
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
