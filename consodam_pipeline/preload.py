"""What a step process needs before it runs: imported once in the run's forkserver, so each step forks
with Dagster, polars, the store and every definition module already loaded (not imported again per step)."""

import importlib
import pkgutil

import consodam_pipeline.definitions
import consodam_pipeline.defs

for module in pkgutil.walk_packages(consodam_pipeline.defs.__path__, "consodam_pipeline.defs."):
    importlib.import_module(module.name)
