"""`consodam demo`: sandboxes up, the main job run on the embedded default, real change, a report."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import click
import dagster as dg

from consodam_pipeline.sandbox.process import SandboxProcess
from consodam_pipeline.store.engine import default_home

DEMO_WORKS = 1000


def port_or_free(preferred: int) -> int:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", preferred))
        except OSError:
            sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def demo_sandbox(works: int, consonance_port: int = 8701, dam_port: int = 8702) -> SandboxProcess:
    return SandboxProcess(
        data_dir=default_home() / f"sandbox-{works}",
        works=works,
        seed=7,
        consonance_port=port_or_free(consonance_port),
        dam_port=port_or_free(dam_port),
    )


def ensure_dagster_home() -> Path:
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path.cwd() / ".dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() and Path("dagster.yaml").exists():
        config.write_text(Path("dagster.yaml").read_text())
    return home


def run_main_job(
    instance: dg.DagsterInstance,
    label: str,
    job_name: str = "consodam_sync",
    periods: list[str] | None = None,
) -> dict[str, dict[str, Any]]:
    from consodam_pipeline.definitions import defs
    from consodam_pipeline.defs.editions import period_keys

    job = defs().resolve_job_def(job_name)
    tags = {"consodam/demo": label}
    if periods:
        ordered = [k for k in period_keys() if k in set(periods)]
        tags |= {
            "dagster/asset_partition_range_start": ordered[0],
            "dagster/asset_partition_range_end": ordered[-1],
        }
    result = job.execute_in_process(instance=instance, tags=tags)
    if not result.success:
        raise click.ClickException(f"the {label} run failed; see `make dev` → Runs")
    report: dict[str, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        key = materialization.asset_key.to_user_string()
        if key == "edition_changes":
            continue
        meta = {k: v.value for k, v in materialization.metadata.items()}
        report.setdefault(key, {}).update(meta)
    return report


def requested_periods(instance: dg.DagsterInstance, cursor: Any) -> tuple[list[str], Any]:
    """What the automation sensor would request now (Declarative Automation, evaluated in process)."""
    from consodam_pipeline.definitions import defs

    tick = dg.evaluate_automation_conditions(defs=defs(), instance=instance, cursor=cursor)
    periods: set[str] = set()
    for key in ("rights_matrix", "dam_title_tags", "dam_access_restrictions"):
        periods |= {str(p) for p in tick.get_requested_partitions(dg.AssetKey(key))}
    return sorted(periods), tick.cursor


def print_sync(title: str, report: dict[str, dict[str, Any]]) -> None:
    click.echo(f"\n== {title}")
    for key in ("rights_matrix", "dam_access_restrictions", "dam_title_tags"):
        meta = report.get(key, {})
        if key == "rights_matrix":
            click.echo(
                f"{key:26} rows {meta.get('dagster/row_count', 0):>7}, granted {meta.get('granted_rows', 0)}"
            )
        else:
            click.echo(
                f"{key:26} planned {meta.get('planned_writes', 0):>6}, written {meta.get('written', 0):>6}, "
                f"failed {meta.get('failed', 0)}, ledger events {meta.get('ledger_events', 0)}"
            )


def print_report(title: str, report: dict[str, dict[str, Any]]) -> None:
    click.echo(f"\n== {title}")
    click.echo(
        f"{'asset':34} {'rows':>8} {'added':>7} {'changed':>8} {'removed':>8} {'quarantined':>12}  mode"
    )
    for key, meta in report.items():
        click.echo(
            f"{key:34} {meta.get('dagster/row_count', ''):>8} {meta.get('added', ''):>7} "
            f"{meta.get('changed', ''):>8} {meta.get('removed', ''):>8} {meta.get('quarantined_open', ''):>12}  "
            f"{meta.get('mode', '')}"
        )


def run_demo(works: int) -> None:
    dagster_home = ensure_dagster_home()
    with demo_sandbox(works) as sandbox:
        os.environ.update(sandbox.env)
        click.echo(f"sandboxes up: Consonance {sandbox.consonance_url}, OpenText DAM {sandbox.dam_url}")
        with dg.DagsterInstance.get() as instance:
            from consodam_pipeline.defs.editions import period_keys

            print_report("first run (everything)", run_main_job(instance, "first run"))
            first = run_main_job(instance, "first sync", "consodam_editions", period_keys())
            print_sync("rights and tags into the DAM (every period, one run)", first)
            print_report(
                "DAM re-read (our own writes are seen, and do not wake the edition graph)",
                run_main_job(instance, "after first sync"),
            )
            _, cursor = requested_periods(instance, None)
            changed = sandbox.admin(
                "consonance", "POST", "/_sandbox/activity", json={"changes": max(5, works // 200)}
            )
            touched = sandbox.admin(
                "dam", "POST", "/_sandbox/activity", json={"changes": max(5, works // 100)}
            )
            click.echo(
                f"\npeople at work: {len(changed['changed_product_ids'])} Consonance edits (titles, rights, dates), "
                f"{len(touched['changed_asset_ids'])} DAM uploads/approvals"
            )
            print_report(
                "second run (incremental: only what changed)", run_main_job(instance, "after activity")
            )
            periods, cursor = requested_periods(instance, cursor)
            click.echo(
                f"\nautomation requests {len(periods)} of {len(period_keys())} periods: {', '.join(periods)}"
            )
            for period in periods:
                print_sync(
                    f"period {period}",
                    run_main_job(instance, f"automation {period}", "consodam_editions", [period]),
                )
    click.echo(
        f"\nWhere to look:\n"
        f"  UI:            make dev   → http://127.0.0.1:3000 (runs, asset graph, metadata, checks)\n"
        f"  Dagster home:  {dagster_home}\n"
        f"  lineage store: {default_home() / 'lineage.db'}\n"
        f"  tables:        {default_home() / 'tables'}\n"
    )
