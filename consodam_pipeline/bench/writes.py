"""`consodam bench writes`: the write path under faults at scale. The backfill of every period runs while
both sandboxes fault (Consonance: 5% of mutation replies cut short, 2% each of 429, 503 and dropped
connections; the DAM: 1.5% each of 429, 500, 502, 503, drops, truncated replies and expired tokens), then a
clean run. After each, what Consonance and the DAM hold is counted against what consodam should have
written: duplicates, missing and stale resources, fields that differ, items pending."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl

from consodam_pipeline.bench.common import Report, bench_sandbox, measured
from consodam_pipeline.domain.periods import period_keys
from consodam_pipeline.sandbox.process import SandboxProcess
from consodam_pipeline.store.resource import LineageStoreResource
from consodam_pipeline.sync.partitions import range_tags
from consodam_pipeline.sync.report import step_failure
from consodam_pipeline.verify import consonance_holdings

CONSONANCE_FAULTS = {"truncated": 0.05, "429": 0.02, "503": 0.02, "drop": 0.02}
DAM_FAULTS = ("429", "500", "502", "503", "drop", "truncated", "expired_token")


def run_job(
    instance: dg.DagsterInstance, name: str, tags: dict[str, str] | None = None
) -> dg.ExecuteInProcessResult:
    from consodam_pipeline.definitions import defs

    return (
        defs()
        .resolve_job_def(name)
        .execute_in_process(instance=instance, tags=tags or {}, raise_on_error=False)
    )


def exactness(sandbox: SandboxProcess, home: Path) -> dict[str, int]:
    """What Consonance holds against the links consodam computed, and what stays pending."""
    links = pl.read_parquet(home / "tables" / "approved_version_links")
    wanted = set(links.select("product_id", "asset_id").iter_rows())
    held = consonance_holdings(sandbox)
    store = LineageStoreResource(url=f"sqlite:///{home / 'lineage.db'}").store()
    return {
        "links": len(wanted),
        "duplicates": sum(n - 1 for n in held.values() if n > 1),
        "missing": len(wanted - set(held)),
        "stale": len(set(held) - wanted),
        "pending": store.bookkeeping.pending_count(),
    }


def written(result: dg.ExecuteInProcessResult) -> dict[str, int]:
    """Write counts over the run's write assets (a run over many periods repeats an asset's metadata on
    each period's materialization: the last one per asset counts)."""
    last: dict[str, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        last[str(event.asset_key)] = {k: v.value for k, v in event.materialization.metadata.items()}
    counts: dict[str, int] = {}
    for meta in last.values():
        for key in ("created", "updated", "removed", "duplicates_removed", "failed"):
            if isinstance(meta.get(key), int):
                counts[key] = counts.get(key, 0) + int(meta[key])
    return counts


def failed_steps(result: dg.ExecuteInProcessResult) -> str:
    failures = [f"{event.step_key}: {step_failure(event)}" for event in result.get_step_failure_events()]
    return "; ".join(failures) or "none"


def run(works: int, seed: int, json_path: Path | None, workdir: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="consodam-bench-writes-") as scratch:
        run_in(Path(scratch), works, seed, json_path, workdir)


def run_in(home: Path, works: int, seed: int, json_path: Path | None, workdir: Path) -> None:
    report = Report(f"consodam bench writes --works {works} (seed {seed}): the write path under faults")
    os.environ.update({"CONSODAM_HOME": str(home), "CONSODAM_STORE_URL": f"sqlite:///{home / 'lineage.db'}"})
    os.environ.pop("CONSODAM_TABLES_PATH", None)  # the tables this bench reads back are its home's
    keys = period_keys()
    with bench_sandbox(works, seed, workdir, report) as sandbox, dg.DagsterInstance.ephemeral() as instance:
        os.environ.update(sandbox.env)
        if not run_job(instance, "consodam_sync").success:
            raise SystemExit("the ingest failed before any fault was set")
        sandbox.fault(
            "consonance", mode="truncated", rate=CONSONANCE_FAULTS["truncated"], body_contains="mutation"
        )
        for mode in ("429", "503", "drop"):
            sandbox.fault("consonance", mode=mode, rate=CONSONANCE_FAULTS[mode], retry_after=0.05)
        for mode in DAM_FAULTS:
            sandbox.fault("dam", mode=mode, rate=0.015, retry_after=0.05, path_prefix="/otmmapi")
        with measured() as faulted:
            first = run_job(instance, "consodam_editions", range_tags(keys))
        fired = {
            w: sum(sandbox.admin(w, "GET", "/_sandbox/faults")["fired"].values())
            for w in ("consonance", "dam")
        }
        sandbox.clear_faults()
        after_faults = exactness(sandbox, home)
        report.row(
            "backfill of every period under faults",
            faulted.seconds,
            f"{fired['consonance']} Consonance + {fired['dam']} DAM faults; {_counts(written(first))}; "
            f"{_state(after_faults)}",
        )
        with measured() as clean:
            second = run_job(instance, "consodam_editions", range_tags(keys))
        after_clean = exactness(sandbox, home)
        report.row("the same, clean", clean.seconds, f"{_counts(written(second))}; {_state(after_clean)}")
    report.figures.update(
        {
            "works": works,
            "faults_fired_consonance": fired["consonance"],
            "faults_fired_dam": fired["dam"],
            "faulted_run_succeeded": first.success,
            "faulted_run_failed_steps": failed_steps(first),
            "faulted_run_s": round(faulted.seconds, 1),
            **{f"after_faults_{k}": v for k, v in after_faults.items()},
            **{f"faulted_{k}": v for k, v in written(first).items()},
            **{f"after_clean_{k}": v for k, v in after_clean.items()},
            **{f"clean_{k}": v for k, v in written(second).items()},
        }
    )
    report.emit(json_path)


def _counts(counts: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def _state(state: dict[str, int]) -> str:
    return (
        f"Consonance: {state['links']} links, {state['duplicates']} duplicates, {state['missing']} missing, "
        f"{state['stale']} stale; {state['pending']} items pending"
    )
