"""Test support: real sandboxes in a subprocess, and a throwaway PostgreSQL cluster."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

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


def edit_dam_fields(sandbox: SandboxProcess, asset_id: str, fields: dict[str, str | None]) -> None:
    """A person edits metadata of one DAM version through the API: lock, update, unlock."""
    headers = {"Authorization": f"Bearer {sandbox.dam_token()}"}
    selection = json.dumps({"selection_context_param": {"selection_context": {"asset_ids": [asset_id]}}})
    base = f"{sandbox.dam_url}/otmmapi/v6/assets"
    metadata = [{"id": k, "value": {"value": {"type": "string", "value": v}}} for k, v in fields.items()]
    with httpx.Client(headers=headers, timeout=30) as client:
        client.put(
            f"{base}/state", data={"action": "lock", "selection_context": selection}
        ).raise_for_status()
        client.patch(
            f"{base}/{asset_id}", json={"edited_asset": {"data": {"metadata": metadata}}}
        ).raise_for_status()
        client.put(
            f"{base}/state", data={"action": "unlock", "selection_context": selection}
        ).raise_for_status()
