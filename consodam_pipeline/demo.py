"""`consodam demo`: sandboxes up, the main job run on the embedded default, real change, a report."""

from __future__ import annotations

import os
import socket
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import dagster as dg

from consodam_pipeline import endpoints
from consodam_pipeline.sandbox.catalog import CATALOG_REVISION
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


def demo_sandbox(
    works: int, consonance_port: int = endpoints.CONSONANCE_PORT, dam_port: int = endpoints.DAM_PORT
) -> SandboxProcess:
    return SandboxProcess(
        data_dir=default_home() / f"sandbox-{works}-r{CATALOG_REVISION}",
        works=works,
        seed=7,
        consonance_port=port_or_free(consonance_port),
        dam_port=port_or_free(dam_port),
    )


def set_aside_another_catalogs_state(works: int) -> None:
    """The demo's store and tables describe the demo catalog they were synced from; when that catalog is new
    (first demo, another size, a newer generator), what an earlier demo left is moved aside, not mixed in."""
    home = default_home()
    if (home / f"sandbox-{works}-r{CATALOG_REVISION}").exists():
        return
    stale = [
        p
        for p in (home / "lineage.db", home / "lineage.db-wal", home / "lineage.db-shm", home / "tables")
        if p.exists()
    ]
    if not stale:
        return
    aside = home / f"before-{datetime.now(UTC):%Y%m%dT%H%M%S}"
    aside.mkdir(parents=True)
    for path in stale:
        path.rename(aside / path.name)
    click.echo(f"a new demo catalog: the earlier demo's store and tables are kept in {aside}")


def ensure_dagster_home() -> Path:
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path.cwd() / ".dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    config, shipped = home / "dagster.yaml", Path("deploy") / "dagster.yaml"
    if not config.exists() and shipped.exists():
        config.write_text(shipped.read_text())
    return home


def run_main_job(
    instance: dg.DagsterInstance,
    label: str,
    job_name: str = "consodam_sync",
    tags: dict[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    from consodam_pipeline.definitions import defs

    job = defs().resolve_job_def(job_name)
    result = job.execute_in_process(instance=instance, tags={"consodam/demo": label, **(tags or {})})
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


def run_periods(instance: dg.DagsterInstance, label: str, periods: list[str]) -> dict[str, dict[str, Any]]:
    """The edition graph for exactly these periods: one run per range of neighbouring periods. Says what
    it ran; counts add up over the runs."""
    from consodam_pipeline.domain.periods import contiguous_ranges
    from consodam_pipeline.sync.partitions import range_tags
    from consodam_pipeline.sync.report import add_counts

    ranges = contiguous_ranges(periods)
    shown = " | ".join(r[0] if len(r) == 1 else f"{r[0]}..{r[-1]}" for r in ranges)
    click.echo(f"running exactly {len(periods)} period(s) in {len(ranges)} run(s): {shown}")
    total: dict[str, dict[str, Any]] = {}
    for keys in ranges:
        for asset, meta in run_main_job(instance, label, "consodam_editions", range_tags(keys)).items():
            add_counts(total.setdefault(asset, {}), meta)
    return total


def requested_periods(instance: dg.DagsterInstance, cursor: Any) -> tuple[list[str], Any]:
    """What the edition sensor would request now (its evaluation, in process): the periods, in order."""
    from consodam_pipeline.domain.periods import period_keys
    from consodam_pipeline.store.resource import LineageStoreResource
    from consodam_pipeline.sync.edition_requests import EditionCursor, evaluate, run_periods

    pending = LineageStoreResource().store().bookkeeping.pending_periods()
    runs, after, _ = evaluate(instance, cursor or EditionCursor(), pending)
    keys = period_keys()
    return sorted({p for run in runs for p in run_periods(run.tags, keys)}, key=keys.index), after


def print_sync(title: str, report: dict[str, dict[str, Any]]) -> None:
    click.echo(f"\n== {title}")
    rows = {
        "rights_matrix": ("rows", "dagster/row_count", "granted", "granted_rows"),
        "dam_access_restrictions": ("written", "written", "failed", "failed"),
        "dam_title_tags": ("written", "written", "failed", "failed"),
        "approved_version_links": ("links", "dagster/row_count", "new ledger events", "events_new_in_ledger"),
        "consonance_asset_links": ("written", "written", "removed", "removed"),
        "title_asset_packages": ("editions", "editions", "complete", "complete_editions"),
        "consonance_stage_advances": ("advanced", "advanced", "held", "held"),
        "dam_review_tasks": ("opened", "created", "cancelled", "removed"),
        "consonance_production_files": ("written", "written", "removed", "removed"),
        "launch_collections": ("published", "created", "removed", "removed"),
    }
    for key, (label_a, field_a, label_b, field_b) in rows.items():
        meta = report.get(key, {})
        click.echo(f"{key:28} {label_a} {meta.get(field_a, 0):>6}, {label_b} {meta.get(field_b, 0)}")


def workflow_story(store: Any) -> str | None:
    """One title consodam advanced (with what met its milestone) and one it holds (with what it lacks);
    returns the advanced title's ISBN."""
    import json

    def first(kind: str, containing: str | None = None) -> dict[str, Any] | None:
        row = store.ledger.first_of(kind, containing)
        return (
            None
            if row is None
            else {"isbn13": row["isbn13"], "run_id": row["run_id"], **json.loads(row["after_json"])}
        )

    click.echo("\n== F2: stages move only when a milestone's assets are approved")
    advanced = first("stage_advanced")
    if advanced:
        gates = [
            json.loads(e["after_json"])
            for e in store.ledger.events_for_isbn(advanced["isbn13"])
            if e["event_type"] == "stage_advanced" and e["run_id"] == advanced["run_id"]
        ]
        chain = " → ".join([gates[0]["from"], *(g["to"] for g in gates)])
        passed = f" ({len(gates)} gates passed in one run, each checked)" if len(gates) > 1 else ""
        met = ", ".join(f"{r} v{v['version']} ({v['approved_by']})" for r, v in gates[0]["met_by"].items())
        click.echo(f"advanced: {advanced['isbn13']} {chain}{passed}; {gates[0]['milestone']} met by {met}")
    held = first("stage_held", '"missing":["')
    if held:
        click.echo(f"held:     {held['isbn13']} at {held['milestone']}, lacks {', '.join(held['missing'])}")
    return None if advanced is None else str(advanced["isbn13"])


def launch_story(dam_url: str) -> None:
    """The fullest launch collection, what it holds, and one of its title sheets read back from the DAM."""
    from consodam_pipeline.clients.dam_models import FIELD
    from consodam_pipeline.clients.opentext_dam import OpenTextDamResource
    from consodam_pipeline.domain.launch import COLLECTION_PREFIX
    from consodam_pipeline.domain.title_sheet import read

    click.echo("\n== F6: launch collections (editions from 90 days before publication to 30 after)")
    with OpenTextDamResource(url=dam_url).client() as client:
        launches = {n: i for n, i in client.collections().items() if n.startswith(COLLECTION_PREFIX)}
        held = {name: client.collection_assets(i) for name, i in launches.items()}
        if not held:
            click.echo("no edition is in its launch window today")
            return
        name = max(held, key=lambda n: (len(held[n]), n))
        click.echo(f"{len(held)} collections; the fullest, '{name}', holds {len(held[name])}:")
        sheet = None
        for asset in sorted((client.get_asset(a) for a in held[name]), key=lambda a: str(a.name)):
            fields = asset.fields()
            click.echo(f"  {fields.get(FIELD + 'ROLE', ''):16} {asset.name} (v{asset.version})")
            sheet = sheet or (asset.asset_id if fields.get(FIELD + "ROLE") == "title_sheet" else None)
        if sheet:
            said = read(client.content(sheet))
            click.echo(f"title sheet {sheet} (ONIX 3.0), read back from the DAM:")
            for field in (
                "isbn13",
                "title",
                "imprint",
                "publishing_status",
                "publication_date",
                "sales_rights",
            ):
                click.echo(f"  {field:18} {said[field]}")
            click.echo(f"  {'resources':18} {len(said['resources'])} approved, rights-cleared versions")


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


def refresh_a_cover(sandbox: SandboxProcess) -> str:
    """A designer uploads a new cover version for one edition and an art director approves it."""
    from consodam_pipeline.store.tables import read_parquet

    links = read_parquet(str(default_home() / "tables" / "approved_version_links"))
    cover = links.filter((links["role"] == "front_cover") & (links["scope"] == "edition")).row(0, named=True)
    sandbox.approve_new_version(cover["asset_id"], uploaded_by="designer")
    click.echo(
        f"cover refresh: {cover['isbn13']} front cover v{cover['version']} → v{cover['version'] + 1} approved"
    )
    return str(cover["isbn13"])


@contextmanager
def dagster_lines_to(path: Path) -> Iterator[None]:
    """Dagster's event lines (its console logger writes to stderr) and its warnings into a file, so the
    demo's own story is what the terminal shows."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as log, redirect_stderr(log), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def compliance_report(store: Any) -> Path:
    """Today's changes as the reviewer's HTML page."""
    from consodam_pipeline.audit.report import ReportQuery, report_frame, write_report

    now = datetime.now(UTC)
    query = ReportQuery(now.replace(hour=0, minute=0, second=0, microsecond=0), now)
    report = report_frame(store.engine, query)
    path = default_home() / f"audit-report-{now:%Y%m%d}.html"
    pages = write_report(report, "html", path, query, "the demo's lineage store")
    editions = report["isbn13"].drop_nulls().n_unique()
    click.echo(f"\n== compliance report: {report.height} changes across {editions} editions today → {path}")
    if len(pages) > 1:
        click.echo(
            f"   (pages of 500 editions: {', '.join(p.name for p in pages)}; each links to the others)"
        )
    return path


def run_demo(works: int) -> None:
    from consodam_pipeline.audit.answer import edition_audit
    from consodam_pipeline.audit.text import render
    from consodam_pipeline.domain.periods import period_keys
    from consodam_pipeline.store.resource import LineageStoreResource

    dagster_home = ensure_dagster_home()
    log_path = default_home() / "demo-dagster.log"
    set_aside_another_catalogs_state(works)
    with demo_sandbox(works) as sandbox:
        os.environ.update(sandbox.env)
        click.echo(f"sandboxes up: Consonance {sandbox.consonance_url}, OpenText DAM {sandbox.dam_url}")
        click.echo(f"Dagster's own event lines go to {log_path}")
        with dagster_lines_to(log_path), dg.DagsterInstance.get() as instance:
            print_report("first run (everything)", run_main_job(instance, "first run"))
            first = run_periods(instance, "first sync", period_keys())
            print_sync("every period in one run (the backlist backfill)", first)
            advanced_isbn = workflow_story(LineageStoreResource().store())
            launch_story(sandbox.dam_url)
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
            isbn = refresh_a_cover(sandbox)
            print_report(
                "second run (incremental: only what changed)", run_main_job(instance, "after activity")
            )
            periods, cursor = requested_periods(instance, cursor)
            click.echo(
                f"\nthe edition sensor requests {len(periods)} of {len(period_keys())} periods: {', '.join(periods)}"
            )
            if periods:
                print_sync("those periods", run_periods(instance, "edition sensor", periods))
        store = LineageStoreResource().store()
        click.echo(f"\n== audit trail of {isbn}, whose cover was just refreshed (consodam audit {isbn})\n")
        click.echo(render(edition_audit(store, isbn)))
        yesterday = datetime.now(UTC) - timedelta(days=1)
        click.echo(f"\nas of {yesterday:%Y-%m-%d} (consodam audit {isbn} --as-of {yesterday:%Y-%m-%d}):")
        for link in edition_audit(store, isbn, yesterday).live:
            click.echo(f"  {link.role:22} {link.asset_id} v{link.version} approved {link.approved_at}")
        report = compliance_report(store)
    if advanced_isbn:
        click.echo(
            f"\n== audit of {advanced_isbn}, which consodam advanced (consodam audit {advanced_isbn})\n"
        )
        click.echo(render(edition_audit(store, advanced_isbn)))
    click.echo(
        f"\nWhere to look:\n"
        f"  UI:            make dev   → http://127.0.0.1:3000 (runs, asset graph, metadata, checks)\n"
        f"  audit:         uv run consodam audit {isbn} [--as-of YYYY-MM-DD] [--json]\n"
        f"  report:        {report}  (uv run consodam audit report --from … --to … --format html|csv|parquet)\n"
        f"  OpenLineage:   set OPENLINEAGE_URL (e.g. Marquez at http://localhost:5000) before make dev\n"
        f"  Dagster home:  {dagster_home}\n"
        f"  lineage store: {default_home() / 'lineage.db'}\n"
        f"  tables:        {default_home() / 'tables'}\n"
        f"  Dagster log:   {log_path}\n"
    )
