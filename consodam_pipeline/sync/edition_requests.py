"""Which runs of the edition graph a change, or a write left pending, calls for.

A change is known by the period markers (`edition_changes`) the ingest records; a pending write by its row
in the write bookkeeping, which names its period. Either way the answer is one run of the whole edition job
per range of neighbouring periods (at most MOST_RUNS at once: the nearest ranges merge beyond that): every
asset a change can affect, in dependency order, in one run (a failed blocking check still stops what is
downstream of it in that run). Assets that have nothing to do for the change plan no writes. The first
load (the sensor's first answer, once both snapshots exist) is one run over every period.

A pending write is asked for again after a back-off that doubles with each run it failed in (one minute,
two, four … up to an hour), never while a run covering its period is queued or running, and not after it
has failed `GIVE_UP_AFTER` runs in a row: then the write check names it and a person decides.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import dagster as dg

from consodam_pipeline.domain.periods import contiguous_ranges, period_keys
from consodam_pipeline.domain.timestamps import to_naive_utc, utcnow
from consodam_pipeline.store.bookkeeping import PendingPeriod
from consodam_pipeline.sync.partitions import (
    EDITION_CHANGES,
    periods_per_run,
    range_tags,
    small_run_config,
)

EDITIONS_JOB = "consodam_editions"
FIRST_RETRY_S = 60.0
LONGEST_RETRY_S = 3600.0
GIVE_UP_AFTER = 8  # runs in a row an item may fail before only a person or a change asks for it again
MARKER_PAGE = 5000
MOST_RUNS = 4  # runs asked for at once (the deployment's max_concurrent_runs): nearest ranges merge beyond
SNAPSHOTS = (dg.AssetKey("title_metadata_snapshot"), dg.AssetKey("dam_asset_inventory"))
UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@dataclass(frozen=True)
class EditionCursor:
    """The newest period marker already answered (its event storage id)."""

    after: int = 0

    @staticmethod
    def parse(text: str | None) -> EditionCursor:
        return EditionCursor(**json.loads(text)) if text else EditionCursor()

    def dump(self) -> str:
        return json.dumps({"after": self.after})


def changed_periods(instance: dg.DagsterInstance, after: int) -> tuple[set[str], int]:
    """Periods marked changed since the storage id `after`, and the newest marker's id."""
    periods: set[str] = set()
    newest = after
    while True:
        found = instance.fetch_materializations(
            dg.AssetRecordsFilter(EDITION_CHANGES, after_storage_id=newest), limit=MARKER_PAGE, ascending=True
        ).records
        periods |= {r.partition_key for r in found if r.partition_key}
        if found:
            newest = found[-1].storage_id
        if len(found) < MARKER_PAGE:
            return periods, newest


def periods_in_flight(instance: dg.DagsterInstance) -> set[str]:
    """Periods a queued or running edition run covers."""
    keys = period_keys()
    covered: set[str] = set()
    for run in instance.get_runs(dg.RunsFilter(job_name=EDITIONS_JOB, statuses=UNFINISHED)):
        covered |= set(run_periods(run.tags, keys))
    return covered


def run_periods(tags: Mapping[str, str], keys: Sequence[str]) -> list[str]:
    """The periods a run's partition tags select (all of them for an unpartitioned run of the job)."""
    if "dagster/partition" in tags:
        return [tags["dagster/partition"]]
    start, end = (
        tags.get("dagster/asset_partition_range_start"),
        tags.get("dagster/asset_partition_range_end"),
    )
    if start in keys and end in keys:
        return list(keys[keys.index(start) : keys.index(end) + 1])
    return list(keys)


def retry_due(pending: PendingPeriod, now: datetime) -> bool:
    """A period's pending writes are asked for again once the back-off since their last failure is over."""
    if pending.runs_in_a_row >= GIVE_UP_AFTER:
        return False
    wait = min(FIRST_RETRY_S * 2 ** max(pending.runs_in_a_row - 1, 0), LONGEST_RETRY_S)
    return now - pending.last_failed_at >= timedelta(seconds=wait)


def requests(changed: Iterable[str], pending: Iterable[str], marker: int) -> list[dg.RunRequest]:
    """One run of the edition job per range of neighbouring periods, tagged with why it was asked for."""
    changed, pending = set(changed), set(pending)
    runs = []
    for keys in split_ranges(
        merged_ranges(contiguous_ranges(changed | pending), MOST_RUNS), periods_per_run()
    ):
        why = sorted(
            {"changes" for k in keys if k in changed} | {"pending writes" for k in keys if k in pending}
        )
        span = keys[0] if len(keys) == 1 else f"{keys[0]}..{keys[-1]}"
        runs.append(
            dg.RunRequest(
                run_key=f"editions:{span}:{marker}:{'+'.join(why)}",
                job_name=EDITIONS_JOB,
                tags={**range_tags(keys), "consodam/trigger": " and ".join(why)},
                run_config=small_run_config(len(keys)),
            )
        )
    return runs


def merged_ranges(ranges: list[list[str]], most: int) -> list[list[str]]:
    """At most `most` ranges: the two separated by the fewest periods merge (with the periods between)
    until few enough. A change scattered over many periods costs a few longer runs, not one run each
    (every run pays Dagster's start-up; a period with nothing changed plans no writes)."""
    keys = period_keys()
    spans = [(keys.index(r[0]), keys.index(r[-1])) for r in ranges]
    while len(spans) > most:
        gap = min(range(len(spans) - 1), key=lambda i: spans[i + 1][0] - spans[i][1])
        spans[gap : gap + 2] = [(spans[gap][0], spans[gap + 1][1])]
    return [keys[a : b + 1] for a, b in spans]


def split_ranges(ranges: list[list[str]], per_run: int | None) -> list[list[str]]:
    """Ranges cut to at most `per_run` periods each (CONSODAM_BACKFILL_RANGE), for a cluster that runs
    them side by side; unchanged with one run per range."""
    if per_run is None:
        return ranges
    return [keys[i : i + per_run] for keys in ranges for i in range(0, len(keys), per_run)]


def evaluate(
    instance: dg.DagsterInstance, cursor: EditionCursor, pending: Sequence[PendingPeriod]
) -> tuple[list[dg.RunRequest], EditionCursor, str]:
    """The runs to request now, the cursor after them, and a line saying why (or why not)."""
    missing = [k.to_user_string() for k in SNAPSHOTS if instance.get_latest_materialization_event(k) is None]
    if missing:  # the first load: the edition graph reads both snapshots
        return [], cursor, f"waiting for the first {' and '.join(missing)}"
    changed, newest = changed_periods(instance, cursor.after)
    if changed and cursor.after == 0:
        changed = set(period_keys())  # the first load: every period in one run (the backlist backfill)
    now = to_naive_utc(utcnow())
    busy = periods_in_flight(instance) if pending else set()
    due = {p.period for p in pending if p.period not in busy and retry_due(p, now)}
    stuck = [p for p in pending if p.runs_in_a_row >= GIVE_UP_AFTER]
    runs = requests(changed, due, newest)
    said = [f"{len(changed)} changed period(s)", f"{len(due)} with pending writes due"]
    if stuck:
        said.append(
            f"{sum(p.items for p in stuck)} write(s) in {', '.join(p.period for p in stuck)} failed "
            f"{GIVE_UP_AFTER}+ runs in a row: see the writes_landed checks"
        )
    return runs, EditionCursor(after=newest), "; ".join(said)
