"""Period markers: a materialization of `edition_changes` for each publication period an ingest's changes
touched, which the edition sensor answers with runs of the edition graph.

A run that ingests both systems records each period once, at the end of its last ingest step: the title step
leaves its periods in the store (a cursor per source, `edition_changes_pending:<source>`) when the DAM step
follows it in the same run, and the step that records takes every period left there with its own. Each
marker is a separate event in Dagster's event log, so a run of both systems records about half as many, and
the edition sensor answers the run's changes in one round instead of two (one after each step). Periods left
by a run whose DAM step failed are recorded by the next ingest step of either system."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping

import dagster as dg

from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.sync.partitions import EDITION_CHANGES

PENDING = "edition_changes_pending:"


def change_markers(
    sources_by_period: Mapping[str, Iterable[str]], **about: str
) -> list[dg.AssetMaterialization]:
    """A marker for each period a change touched: the edition graph re-materializes exactly these."""
    return [
        dg.AssetMaterialization(
            asset_key=EDITION_CHANGES,
            partition=period,
            metadata={"source": ", ".join(sorted(sources)), **about},
        )
        for period, sources in sorted(sources_by_period.items())
    ]


def recorded_later(context: dg.AssetExecutionContext, step: str | None) -> bool:
    """Whether this run executes `step` after the current one (the step records this one's markers)."""
    if step is None:
        return False
    in_job = {node.name for node in context.job_def.nodes}
    to_execute = context.run.step_keys_to_execute
    return step in in_job and (to_execute is None or step in to_execute)


def leave(store: LineageStore, source: str, periods: Iterable[str], run_id: str) -> None:
    """Keep this source's periods in the store for the step that records them (added to any still there)."""
    periods = set(periods)
    if not periods:
        return
    name = PENDING + source
    with store.engine.begin() as conn:
        held = store.cursors.get(name, conn)
        periods |= set(json.loads(held)["periods"]) if held else set()
        value = json.dumps({"run": run_id, "periods": sorted(periods)})  # the run id: a new value each time
        store.cursors.set(conn, name, value, run_id)


def record(store: LineageStore, source: str, periods: Iterable[str]) -> Iterator[dg.AssetMaterialization]:
    """This source's markers with every period other steps left in the store; what was taken is removed
    once the markers are recorded, unless a step left more meanwhile (recorded next time, never lost)."""
    left = store.cursors.named_with(PENDING)
    sources_by_period: dict[str, set[str]] = {period: {source} for period in periods}
    for name, value in left.items():
        for period in json.loads(value)["periods"]:
            sources_by_period.setdefault(period, set()).add(name.removeprefix(PENDING))
    yield from change_markers(sources_by_period)
    store.cursors.drop_unchanged(left)
