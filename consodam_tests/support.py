"""Test support: real sandboxes in a subprocess, and a throwaway PostgreSQL cluster."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from consodam_pipeline.sandbox.process import SandboxProcess
from consodam_pipeline.store.pgcluster import PostgresCluster, find_pg_bin

__all__ = ["PostgresCluster", "Sandbox", "env", "find_pg_bin"]

ANCHOR = "2026-11-01"


@dataclass
class Sandbox(SandboxProcess):
    """Test sandboxes: a pinned anchor date and a visible share of dirty records."""

    dirt_rate: float = 0.02
    anchor: str | None = ANCHOR


@contextmanager
def env(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
