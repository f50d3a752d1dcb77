"""Change probes shared by the ingest sensors: a cheap listing of what changed recently.

The sensors tick on every loop of the daemon (about every 5 s) but probe their system only when its probe
is due (the cursor says when it last probed): the request rate is the probe interval's, and a probe put off
while a run was in flight happens on the first tick after that run, not a whole interval later.

The cursor remembers a short digest of each (object, stamp) change in the last window; a run is requested
when the window holds a change the last probe had not seen. The run_key carries a fingerprint of the
window, so Dagster never runs the same change set twice, and a probe costs time in proportion to recent
changes, not to the catalog. Three things keep runs from piling up:
- changes whose stamp is the one the system showed right after consodam's own write (the write journal)
  are consodam's writes coming back, not work: they are left out of the window;
- while a run for the asset is queued or in progress, or an edition run is writing, nothing is probed or
  requested and the cursor stays put, so the first probe after it requests one run covering whatever came
  meanwhile;
- the initial load (the asset never materialized) is requested once; only a failed one is asked again.
"""

import hashlib
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta

import dagster as dg

from consodam_pipeline.clients.consonance import ConsonanceResource
from consodam_pipeline.clients.opentext_dam import OpenTextDamResource, modified_after
from consodam_pipeline.domain.timestamps import format_ts, parse_ts, utcnow
from consodam_pipeline.store.lineage import LineageStore
from consodam_pipeline.sync.edition_requests import EDITIONS_JOB
from consodam_pipeline.sync.partitions import RETRY_ALL_STEPS, small_run_config
from consodam_pipeline.sync.usage_ingest import USAGE_CURSOR

TITLES = dg.AssetKey("title_metadata_snapshot")
INVENTORY = dg.AssetKey("dam_asset_inventory")
USAGE = dg.AssetKey("dam_usage_log")
PROBE_DAYS = 1  # changedSince is date-granular: today and yesterday cover any tick interval under a day
# A DAM change may show in its listing a little after its stamp (second granularity, indexing): the window
# reaches this far behind the newest stamp seen, until that stamp has stood this long (by this clock:
# durations only, so the two systems' clocks need not agree); then nothing older can still appear, and the
# window starts at the stamp itself. At rest a probe is then one request, not a re-read of the last burst.
LOOKBACK = timedelta(seconds=120)

INTERVAL_SETTING = "CONSODAM_SENSOR_INTERVAL_S"


def sensor_interval() -> int:
    """Seconds between the Consonance probes: CONSODAM_SENSOR_INTERVAL_S, else 60. A change reaches the
    other system within about its probe's interval plus one ingest and one edition run."""
    text = os.environ.get(INTERVAL_SETTING, "60")
    if not text.isdigit() or not 5 <= int(text) <= 86400:
        raise ValueError(f"{INTERVAL_SETTING}={text!r}: expected whole seconds from 5 to 86400")
    return int(text)


def dam_probe_interval() -> int:
    """The DAM's change probe runs twice as often: an approval waiting in the DAM is the change a publisher
    watches for, and with the process's token reused a probe is one request (two were: token, listing)."""
    return max(5, sensor_interval() // 2)


def usage_probe_interval() -> int:
    """The usage log is read for the audit, not to write anywhere: half as often."""
    return sensor_interval() * 2


# Dagster's daemon evaluates sensors about every DAEMON_LOOP_S; a sensor whose minimum interval is that long
# is often found a moment short of it and waits a second loop. A shorter minimum puts a tick on every loop.
DAEMON_LOOP_S = 5
PROBE_TICK_S = 3  # an ingest sensor looks whether its probe is due on every loop (no request when it is not)
EDITION_SENSOR_INTERVAL_S = 3  # reads the store and the run queue only: no request to either system


@dataclass
class ProbeCursor:
    fingerprint: str = ""
    high_water: str = ""
    seen: list[str] = field(default_factory=list)  # digests of the changes in the last window
    probed_at: float = 0.0  # epoch seconds of the last probe
    high_water_at: float = 0.0  # epoch seconds when the high-water mark last moved

    def due_in(self, interval: int) -> float:
        """Seconds until the next probe is due (0 or less: now). A probe due before the next tick is due
        now: waiting a tick for it would add a tick to every interval."""
        return self.probed_at + interval - time.time() - DAEMON_LOOP_S / 2

    @classmethod
    def parse(cls, raw: str | None) -> "ProbeCursor":
        return cls(**json.loads(raw)) if raw else cls()

    def dump(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def due_now(cursor: str | None) -> str | None:
    """A sensor's cursor as if its probe's interval had passed: the next tick probes (a benchmark or a test
    ticks faster than any interval)."""
    if cursor is None:
        return None
    probed = ProbeCursor.parse(cursor)
    probed.probed_at = 0.0
    return probed.dump()


def digest(key: str, stamp: str) -> str:
    return hashlib.sha256(f"{key}\x1f{stamp}".encode()).hexdigest()[:12]


def fingerprint(changes: Iterable[tuple[str, str]]) -> str:
    digest = hashlib.sha256()
    for key, version in sorted(changes):
        digest.update(f"{key}\x1f{version}\n".encode())
    return digest.hexdigest()


def not_our_own(store: LineageStore, system: str, changes: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The changes that are not consodam's own writes seen again (same object, same stamp)."""
    ours = store.bookkeeping.journal(system, [key for key, _ in changes])
    return [(key, stamp) for key, stamp in changes if ours.get(key) != stamp]


def consonance_changes(consonance: ConsonanceResource, store: LineageStore) -> list[tuple[str, str]]:
    """(product id, updatedAt) of the products likely changed since yesterday, consodam's own writes left out."""
    since = (utcnow() - timedelta(days=PROBE_DAYS)).date()
    with consonance.client() as client:
        pages = client.iter_product_stamps(changed_since=since)
        changes = [(str(p.id), p.updated_at or "") for page in pages for p in page]
    return not_our_own(store, "consonance", changes)


def dam_changes(
    dam: OpenTextDamResource, store: LineageStore, cursor: ProbeCursor
) -> tuple[list[tuple[str, str]], str]:
    """(version id, modified stamp) of the DAM versions modified after the high-water mark (a slim
    listing), consodam's own writes left out; and the new high-water mark."""
    high_water = cursor.high_water or format_ts(utcnow() - LOOKBACK)
    settled = cursor.high_water and time.time() - cursor.high_water_at >= LOOKBACK.total_seconds()
    since = high_water if settled else format_ts(parse_ts(high_water) - LOOKBACK)
    with dam.client() as client:
        changes = [
            (a.asset_id, a.date_last_updated or "") for a in client.search([modified_after(since)], slim=True)
        ]
    newest = max([high_water, *(c[1] for c in changes)])
    return not_our_own(store, "dam", changes), newest


def usage_changes(dam: OpenTextDamResource, store: LineageStore) -> list[tuple[str, str]]:
    """(sequence, time) of the DAM usage log entries past what the lineage store holds."""
    after = int(store.cursors.get(USAGE_CURSOR) or 0)
    with dam.client() as client:
        return [(str(r.seq), r.used_at) for r in client.usage_page(after, 200)]


def run_in_flight(instance: dg.DagsterInstance, asset_key: dg.AssetKey) -> dg.DagsterRun | None:
    """The queued or running run that plans to materialize this asset, if any."""
    planned = instance.get_latest_planned_materialization_info(asset_key)
    if planned is None:
        return None
    run = instance.get_run_by_id(planned.run_id)
    return run if run is not None and not run.is_finished else None


def edition_run_in_flight(instance: dg.DagsterInstance) -> dg.DagsterRun | None:
    """A run of the edition job that has started and not finished."""
    running = instance.get_runs(
        dg.RunsFilter(
            job_name=EDITIONS_JOB,
            statuses=[dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED],
        ),
        limit=1,
    )
    return running[0] if running else None


def last_run_failed(instance: dg.DagsterInstance, asset_key: dg.AssetKey) -> str | None:
    planned = instance.get_latest_planned_materialization_info(asset_key)
    run = instance.get_run_by_id(planned.run_id) if planned is not None else None
    return run.run_id if run is not None and run.status == dg.DagsterRunStatus.FAILURE else None


def not_now(
    context: dg.SensorEvaluationContext,
    *,
    asset_key: dg.AssetKey,
    cursor: ProbeCursor,
    interval: int,
    needs: Sequence[dg.AssetKey] = (),
) -> dg.SensorResult | None:
    """Why this tick does not probe (a skip that keeps the cursor), or None: probe now."""
    name = asset_key.to_user_string()
    missing = [
        k.to_user_string() for k in needs if context.instance.get_latest_materialization_event(k) is None
    ]
    reason = None
    if missing:  # the first load: the snapshot this ingest reads comes first (the cursor waits too)
        reason = f"waiting for the first {', '.join(missing)}: {name} reads it"
    elif (writing := edition_run_in_flight(context.instance)) is not None:
        # its writes come back as consodam's own only once its record step journals them
        reason = f"edition run {writing.run_id[:8]} is writing: {name} is probed after it"
    elif (busy := run_in_flight(context.instance, asset_key)) is not None:
        reason = (
            f"run {busy.run_id[:8]} for {name} is {busy.status.value.lower()}: the first probe after it picks "
            "up whatever changed meanwhile"
        )
    elif (wait := cursor.due_in(interval)) > 0:
        reason = f"next probe in {wait:.0f} s (every {interval} s)"
    return None if reason is None else dg.SensorResult(skip_reason=reason, cursor=cursor.dump())


def decide(
    context: dg.SensorEvaluationContext,
    *,
    asset_key: dg.AssetKey,
    changes: list[tuple[str, str]],
    cursor: ProbeCursor,
    high_water: str = "",
) -> dg.SensorResult:
    """After a probe: the initial load, one run for the changes the last probe had not seen, or nothing."""
    name = asset_key.to_user_string()
    fp = fingerprint(changes)
    seen = sorted({digest(key, stamp) for key, stamp in changes})
    now = time.time()
    moved = bool(high_water) and high_water != cursor.high_water
    new_cursor = ProbeCursor(
        fingerprint=fp,
        high_water=high_water or cursor.high_water,
        seen=seen,
        probed_at=now,
        high_water_at=now if moved else cursor.high_water_at,
    ).dump()
    if context.instance.get_latest_materialization_event(asset_key) is None:
        failed = last_run_failed(context.instance, asset_key)
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=f"{name}:initial" + (f":after:{failed}" if failed else ""),
                    asset_selection=[asset_key],
                    run_config=small_run_config(),
                    tags={"consodam/trigger": "initial load", **RETRY_ALL_STEPS},
                )
            ],
            cursor=new_cursor,
        )
    unseen = set(seen) - set(cursor.seen)
    if not unseen:
        return dg.SensorResult(skip_reason=f"no new changes ({len(changes)} in window)", cursor=new_cursor)
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                run_key=f"{name}:{fp[:24]}",
                asset_selection=[asset_key],
                run_config=small_run_config(),
                tags={
                    **RETRY_ALL_STEPS,
                    "consodam/changes_in_window": str(len(changes)),
                    "consodam/new_changes": str(len(unseen)),
                },
            )
        ],
        cursor=new_cursor,
    )
