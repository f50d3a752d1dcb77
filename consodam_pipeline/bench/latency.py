"""`consodam bench latency`: how long a change made in one system takes to show in the other.

It starts what `make dev` starts (both sandboxes, then `dg dev`: webserver, daemon, code server, on the
embedded SQLite instance with deploy/dagster.yaml) in a folder of its own, lets the sensors load everything,
counts the requests each API receives at rest, then makes each kind of change (sandbox/people.py) `repeat`
times, one at a time, at a random moment of the sensors' cycle, through `/_sandbox/`. A change's latency runs
from the moment it is made to the moment the other system, read over its API, shows it; the deployment goes
quiet before the next. Nobody launches a run: the sensors and the edition sensor do everything.
"""

from __future__ import annotations

import random
import shutil
import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import click
import dagster as dg

from consodam_pipeline.bench.common import Report, percentile
from consodam_pipeline.deployment import UNFINISHED, Deployment, deployment
from consodam_pipeline.sandbox.people import KINDS, Change
from consodam_pipeline.sync.probe import DAEMON_LOOP_S, INVENTORY, LOOKBACK, TITLES, USAGE, sensor_interval

FIRST_LOAD_BOUND_S = 1200.0
CHANGE_BOUND_S = 300.0  # a change not shown by then fails the benchmark
POLL_S = 0.5
# How the figures are named in the JSON: the kinds of change and what shows them.
SHOWN_AS = {
    "approval": "approval_to_consonance",
    "rejection": "rejection_to_consonance",
    "new_version": "new_version_to_tasks",
    "milestone": "milestone_to_tasks",
    "rights": "rights_to_dam",
    "date_move": "date_move_to_collection",
}


@dataclass
class Latencies:
    seconds: dict[str, list[float]] = field(default_factory=dict)
    runs_per_change: list[int] = field(default_factory=list)
    most_runs_in_flight: int = 0


def served(dev: Deployment, which: str) -> dict[str, int]:
    """API requests the sandbox has answered so far by route (its /_sandbox/ admin calls not counted)."""
    assert dev.sandbox is not None
    return {
        str(k): int(v)
        for k, v in dev.sandbox.admin(which, "GET", "/_sandbox/faults")["requests_by_route"].items()
    }


def runs_since(dev: Deployment, moment: datetime) -> list[dg.DagsterRun]:
    return list(dev.instance.get_runs(dg.RunsFilter(created_after=moment)))


def requests_at_rest(dev: Deployment, seconds: float) -> dict[str, float]:
    """Requests per minute each API receives while nothing changes (only the sensors' probes)."""
    moment = datetime.now(UTC)
    before = {which: served(dev, which) for which in ("consonance", "dam")}
    time.sleep(seconds)
    after = {which: served(dev, which) for which in ("consonance", "dam")}
    routes = {
        f"{which} {route}": (n - before[which].get(route, 0)) * 60 / seconds
        for which in after
        for route, n in after[which].items()
        if n > before[which].get(route, 0)
    }
    rates = {which: sum(v for k, v in routes.items() if k.startswith(which)) for which in after}
    return {**rates, "runs": float(len(runs_since(dev, moment))), **routes}


def shown_after(dev: Deployment, change: Change, found: Latencies) -> float:
    """Make the change; seconds until the other system shows it (polled every POLL_S)."""
    moment = datetime.now(UTC)
    started = time.monotonic()
    shown = change.make()
    last: bool | str = False
    while time.monotonic() - started < CHANGE_BOUND_S:
        last = shown()
        if last is True:
            seconds = time.monotonic() - started
            found.runs_per_change.append(len(runs_since(dev, moment)))
            return seconds
        found.most_runs_in_flight = max(found.most_runs_in_flight, len(dev.runs(*UNFINISHED)))
        time.sleep(POLL_S)
    raise click.ClickException(
        f"{change.kind} ({change.subject}) not shown within {CHANGE_BOUND_S:.0f} s: {last}"
    )


def loaded(dev: Deployment) -> bool | str:
    """Every ingest asset materialized once and nothing in flight: the sensors' first load is over."""
    missing = [k.to_user_string() for k in (TITLES, INVENTORY, USAGE) if not dev.instance.has_asset_key(k)]
    return dev.quiet() if not missing else f"not yet loaded: {', '.join(missing)}"


def settle_set_up(dev: Deployment, label: str) -> None:
    """Set-up changes reach consodam before anything is timed: every probe has gone out once since they were
    made (quiet alone can come before the next Consonance probe), and the runs they woke have ended."""
    time.sleep(sensor_interval() + 2 * DAEMON_LOOP_S)
    dev.settle(label, lambda: True)


def measure(dev: Deployment, kinds: list[str], repeat: int, seed: int) -> Latencies:
    """Every change picked and set up first (then the deployment settles), then made one at a time."""
    changes = {kind: [dev.people.change(kind) for _ in range(repeat)] for kind in kinds}
    settle_set_up(dev, "the set-up")
    for change in (c for made in changes.values() for c in made if c.then is not None):
        change.then()  # type: ignore[misc]
    settle_set_up(dev, "the set-up's second step")
    found = Latencies({kind: [] for kind in kinds})
    moments = random.Random(seed)
    for round_ in range(repeat):
        for kind in kinds:
            time.sleep(moments.uniform(0, sensor_interval()))  # anywhere in the sensors' cycle
            change = changes[kind][round_]
            seconds = shown_after(dev, change, found)
            found.seconds[kind].append(seconds)
            dev.say(f"  {time.strftime('%H:%M:%S')} {kind:12} {seconds:6.1f} s  {change.subject}")
            dev.settle(f"after {kind}", lambda: True)
    return found


def run(
    works: int,
    seed: int,
    json_path: Path | None,
    workdir: Path,
    repeat: int,
    kinds: list[str],
    rest_s: float,
) -> None:
    report = Report(f"latency: a change → the other system, `make dev` on {works} works, {repeat} of each")
    folder = workdir / f"latency-{works}-{seed}"
    shutil.rmtree(folder, ignore_errors=True)  # a deployment from nothing, as `make dev` on a fresh clone
    with deployment(works, folder, say=click.echo, topology="dev", seed=seed, kind=Deployment) as dev:
        first = dev.settle("the first load", lambda: loaded(dev), FIRST_LOAD_BOUND_S)
        report.row("first load by the sensors alone", first)
        time.sleep(LOOKBACK.total_seconds())  # the DAM window still reaches back over the load's last writes
        rest = requests_at_rest(dev, rest_s)
        by_route = ", ".join(f"{k} {v:.1f}/min" for k, v in rest.items() if " " in k)
        report.row(
            "at rest",
            rest_s,
            f"Consonance {rest['consonance']:.1f}/min, DAM {rest['dam']:.1f}/min, {rest['runs']:.0f} runs "
            f"({by_route})",
        )
        found = measure(dev, kinds, repeat, seed)
    for kind in kinds:
        values = found.seconds[kind]
        p50, p95 = statistics.median(values), percentile(values, 0.95)
        report.row(f"{SHOWN_AS[kind]} p50", p50, f"p95 {p95:.1f} s, max {max(values):.1f} s, n={len(values)}")
        report.figures[f"{SHOWN_AS[kind]}_p50_s"] = round(p50, 1)
        report.figures[f"{SHOWN_AS[kind]}_p95_s"] = round(p95, 1)
    report.figures.update(
        requests_per_min_at_rest=round(rest["consonance"] + rest["dam"], 1),
        consonance_requests_per_min_at_rest=round(rest["consonance"], 1),
        dam_requests_per_min_at_rest=round(rest["dam"], 1),
        runs_at_rest=int(rest["runs"]),
        requests_per_min_at_rest_by_route={k: round(v, 1) for k, v in rest.items() if " " in k},
        runs_per_change_max=max(found.runs_per_change),
        most_runs_in_flight=found.most_runs_in_flight,
        sensor_interval_s=sensor_interval(),
        first_load_s=round(first, 1),
        works=works,
        repeat=repeat,
    )
    report.emit(json_path)


def parse_kinds(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise click.BadParameter(f"{', '.join(unknown) or text!r}: expected some of {', '.join(KINDS)}")
    return kinds
