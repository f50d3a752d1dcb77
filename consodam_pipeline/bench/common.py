"""Timing, peak memory and the printed/JSON report shared by the benchmarks."""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from consodam_pipeline.sandbox.catalog import CATALOG_REVISION
from consodam_pipeline.sandbox.process import SandboxProcess

T = TypeVar("T")
SHIPPED_INSTANCE = Path(__file__).resolve().parents[2] / "deploy" / "dagster.yaml"


def shipped_instance_class() -> dict[str, Any]:
    """The `instance_class` of the instance `make demo` and `make dev` run with, for a benchmark's own
    instance (Dagster's when the file names none)."""
    import yaml

    config = yaml.safe_load(SHIPPED_INSTANCE.read_text()) if SHIPPED_INSTANCE.exists() else {}
    return {"instance_class": config["instance_class"]} if "instance_class" in config else {}


def _status_mb(field: str, pid: int | str = "self") -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass  # the process has ended
    return 0.0


def rss_mb() -> float:
    return _status_mb("VmRSS:")


def peak_rss_mb(pid: int | str = "self") -> float:
    """A process's peak resident memory (VmHWM: unlike ru_maxrss, not inherited across exec); this one's
    unless `pid` names another."""
    return _status_mb("VmHWM:", pid)


def percentile(samples: list[float], q: float) -> float:
    """The sample nearest the q-th quantile (no interpolation: a figure that was measured)."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def every_period(
    tables: str, version_columns: list[str], edition_columns: list[str] | None = None
) -> tuple[Any, Any, float]:
    """A step's inputs over every period, read from the ingest's Parquet tables as its asset reads them (the
    inventory's columns sliced to the periods as it is read): editions, versions, seconds taken."""
    import polars as pl

    from consodam_pipeline.domain.periods import partition_slice, period_keys

    start = time.perf_counter()
    editions, versions = partition_slice(
        pl.read_parquet(f"{tables}/title_metadata_snapshot.parquet", columns=edition_columns),
        pl.scan_parquet(f"{tables}/dam_asset_inventory.parquet").select(version_columns),
        period_keys(),
    )
    return editions, versions, time.perf_counter() - start


def repeated(compute: Callable[[], T], times: int) -> tuple[T, list[float]]:
    """The result of `compute` and the seconds each of `times` runs of it took."""
    runs = []
    for _ in range(times):
        start = time.perf_counter()
        result = compute()
        runs.append(time.perf_counter() - start)
    return result, runs


@dataclass
class Measure:
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    cpu_s: float = 0.0  # this process's CPU time (every thread): steadier than wall time on a busy machine


@contextmanager
def measured(interval: float = 0.05) -> Iterator[Measure]:
    """Wall time, CPU time and the peak resident memory of this process while the block runs."""
    result = Measure(peak_rss_mb=rss_mb())
    done = threading.Event()

    def sample() -> None:
        while not done.wait(interval):
            result.peak_rss_mb = max(result.peak_rss_mb, rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start, cpu = time.perf_counter(), time.process_time()
    try:
        yield result
    finally:
        result.seconds = time.perf_counter() - start
        result.cpu_s = time.process_time() - cpu
        done.set()
        sampler.join()
        result.peak_rss_mb = max(result.peak_rss_mb, rss_mb())


@dataclass
class Report:
    title: str
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)

    def row(self, name: str, seconds: float, detail: str = "", memory: float | None = None) -> None:
        self.rows.append((name, f"{seconds:.3f}", detail, "" if memory is None else f"{memory:.0f}"))

    def emit(self, json_path: Path | None) -> None:
        click.echo(f"\n{self.title}")
        click.echo(f"{'measurement':44} {'seconds':>10}  {'peak MB':>8}  detail")
        for name, seconds, detail, memory in self.rows:
            click.echo(f"{name:44} {seconds:>10}  {memory:>8}  {detail}")
        click.echo("")
        for key, value in self.figures.items():
            click.echo(f"{key:32} {value}")
        if json_path is not None:
            json_path.write_text(json.dumps(self.figures, indent=2, sort_keys=True) + "\n")
            click.echo(f"\nwrote {json_path}")


def _revision(catalog: Path) -> str | None:
    try:
        with sqlite3.connect(catalog / "consonance.sqlite") as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


def pristine_catalog(works: int, seed: int, workdir: Path, report: Report | None = None) -> Path:
    pristine = workdir / f"pristine-{works}-{seed}-r{CATALOG_REVISION}"
    if pristine.exists() and _revision(pristine) != str(CATALOG_REVISION):
        shutil.rmtree(pristine)  # saved before catalogs recorded their revision: generate it again
    if not (pristine / "consonance.sqlite").exists():
        with (
            measured() as generation,
            SandboxProcess(pristine, works=works, seed=seed, startup_timeout_s=900),
        ):
            pass
        if report is not None:
            report.row("catalog generated (incl. process start)", generation.seconds)
            report.figures["catalog_generation_s"] = round(generation.seconds, 1)
    return pristine


def bench_sandbox(works: int, seed: int, workdir: Path, report: Report | None = None) -> SandboxProcess:
    """A sandbox on a private copy of a pristine catalog (generated once per size and seed)."""
    pristine = pristine_catalog(works, seed, workdir, report)
    live = workdir / "live"
    shutil.rmtree(live, ignore_errors=True)
    live.mkdir(parents=True)
    for name in ("consonance.sqlite", "dam.sqlite"):
        shutil.copy(pristine / name, live / name)
    return SandboxProcess(live, works=works, seed=seed, startup_timeout_s=900)
