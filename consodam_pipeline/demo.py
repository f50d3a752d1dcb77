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

DEMO_WORKS = 2000


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


def run_main_job(instance: dg.DagsterInstance, label: str) -> dict[str, dict[str, Any]]:
    from consodam_pipeline.definitions import defs

    job = defs().resolve_job_def("consodam_sync")
    result = job.execute_in_process(instance=instance, tags={"consodam/demo": label})
    if not result.success:
        raise click.ClickException(f"the {label} run failed; see `make dev` → Runs")
    report: dict[str, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        key = materialization.asset_key.to_user_string()
        meta = {k: v.value for k, v in materialization.metadata.items()}
        report.setdefault(key, {}).update(meta)
    return report


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
            print_report("first run (everything)", run_main_job(instance, "first run"))
            changed = sandbox.admin(
                "consonance", "POST", "/_sandbox/activity", json={"changes": max(5, works // 200)}
            )
            touched = sandbox.admin(
                "dam", "POST", "/_sandbox/activity", json={"changes": max(5, works // 100)}
            )
            click.echo(
                f"\npeople at work: {len(changed['changed_product_ids'])} Consonance edits, "
                f"{len(touched['changed_asset_ids'])} DAM uploads/approvals"
            )
            print_report(
                "second run (incremental: only what changed)", run_main_job(instance, "after activity")
            )
    click.echo(
        f"\nWhere to look:\n"
        f"  UI:            make dev   → http://127.0.0.1:3000 (runs, asset graph, metadata, checks)\n"
        f"  Dagster home:  {dagster_home}\n"
        f"  lineage store: {default_home() / 'lineage.db'}\n"
        f"  tables:        {default_home() / 'tables'}\n"
    )
