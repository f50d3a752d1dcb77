"""`consodam sandbox | demo | audit | bench` — the project's command line."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import date
from pathlib import Path

import click

from consodam_pipeline import endpoints
from consodam_pipeline.audit.cli import audit


class Consodam(click.Group):
    """The command line; a bad rules file ends any command with its one line (file, field, reason)."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ValueError as exc:
            from consodam_pipeline.domain.packages import (
                RulesError,
            )  # here: `consodam audit` loads no pydantic

            if not isinstance(exc, RulesError):
                raise
            click.echo(f"consodam: {exc}", err=True)
            ctx.exit(2)


@click.group(cls=Consodam)
def main() -> None:
    """consodam: Consonance ↔ OpenText DAM sync with a provable lineage."""


@main.command()
@click.option("--works", default=1000, show_default=True, help="Works in the generated catalog.")
@click.option("--seed", default=7, show_default=True)
@click.option(
    "--anchor", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Catalog 'today' (default: today)."
)
@click.option("--dirt-rate", default=0.005, show_default=True, help="Share of records made dirty on purpose.")
@click.option(
    "--data-dir", type=click.Path(path_type=Path), default=Path(".consodam/sandbox"), show_default=True
)
@click.option("--consonance-port", default=endpoints.CONSONANCE_PORT, show_default=True)
@click.option("--dam-port", default=endpoints.DAM_PORT, show_default=True)
@click.option("--token-ttl", default=3600, show_default=True, help="Seconds a DAM access token lives.")
def sandbox(
    works: int,
    seed: int,
    anchor: object,
    dirt_rate: float,
    data_dir: Path,
    consonance_port: int,
    dam_port: int,
    token_ttl: int,
) -> None:
    """Start the Consonance and OpenText DAM sandboxes on 127.0.0.1; state persists in --data-dir."""
    from consodam_pipeline.sandbox.run import SandboxConfig, ensure_catalog, serve

    config = SandboxConfig(
        data_dir=data_dir,
        works=works,
        seed=seed,
        dirt_rate=dirt_rate,
        consonance_port=consonance_port,
        dam_port=dam_port,
        token_ttl=token_ttl,
        anchor=anchor.date() if anchor is not None else date.today(),  # type: ignore[attr-defined]
    )
    stats = ensure_catalog(config)
    if stats is not None:
        click.echo(
            f"# seeded {stats.works} works, {stats.products} editions, {stats.asset_versions} asset versions "
            f"into {data_dir}",
            err=True,
        )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config))


@main.command()
@click.option("--works", default=1000, show_default=True, help="Size of the demo catalog.")
def demo(works: int) -> None:
    """Start the sandboxes, run the main job twice with real change between, and say where to look."""
    from consodam_pipeline.demo import run_demo

    run_demo(works)


@main.command()
@click.option("--works", default=1000, show_default=True, help="Size of the demo catalog.")
@click.option("--port", default=3000, show_default=True, help="Port of the Dagster UI.")
def dev(works: int, port: int) -> None:
    """Start the sandboxes, then Dagster's webserver and daemon (`dg dev`). Ctrl-C or SIGTERM stops them all."""
    import os

    from consodam_pipeline.demo import demo_sandbox, ensure_dagster_home
    from consodam_pipeline.dev import dev_command, dev_env
    from consodam_pipeline.processes import Service, stop_on_signals

    ensure_dagster_home()
    with stop_on_signals(), contextlib.suppress(KeyboardInterrupt), demo_sandbox(works) as sandbox:
        click.echo(f"sandboxes up: {sandbox.consonance_url} {sandbox.dam_url}")
        env = {**os.environ, **sandbox.env, **dev_env()}
        with Service("dagster", dev_command(port), env=env) as dagster:
            dagster.wait()
    click.echo("stopped: the Dagster webserver and daemon, and both sandboxes")


main.add_command(audit)


@main.command("code-server")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=4266, show_default=True)
def code_server(host: str, port: int) -> None:
    """Serve the code location over gRPC (Dagster's code server): the only server on its port, and it
    exits on SIGTERM whatever signals the caller ignored."""
    from consodam_pipeline.processes import exec_code_server, port_answers

    if port_answers(host, port):
        raise click.ClickException(
            f"{host}:{port} is already served (another code server?): stop it first. Two servers on one "
            "port would share its requests between the old code and the new."
        )
    exec_code_server(host, port)


@main.command("deploy-check")
@click.option("--works", default=40, show_default=True, help="Size of the sandbox catalog.")
@click.option("--workdir", type=click.Path(path_type=Path), default=None, help="Keep logs and data here.")
def deploy_check(works: int, workdir: Path | None) -> None:
    """The production topology as processes (PostgreSQL, code server, daemon, webserver) put through its
    faults: a killed daemon, a killed run worker, PostgreSQL stopped, a restarted code server."""
    from consodam_pipeline.deploy_check import run_check
    from consodam_pipeline.deployment import DeploymentFailed
    from consodam_pipeline.processes import stop_on_signals

    with stop_on_signals():
        try:
            run_check(works, workdir, say=click.echo)
        except DeploymentFailed as exc:
            raise click.ClickException(str(exc)) from None
    click.echo("the deployment healed from every fault; each system holds exactly what it should")


@main.command("celery-worker")
@click.option("--name", default="consodam", show_default=True, help="The worker's name (unique per broker).")
def celery_worker(name: str) -> None:
    """A celery worker for the edition job's steps, on the broker CONSODAM_CELERY_BROKER names (set it for the
    code server and the runs too: their steps then go to the workers)."""
    from consodam_pipeline.processes import exec_celery_worker
    from consodam_pipeline.store.engine import default_home

    exec_celery_worker(name, default_home())


@main.group()
def store() -> None:
    """The lineage store (CONSODAM_STORE_URL, else SQLite under CONSODAM_HOME)."""


@store.command("migrate")
def store_migrate() -> None:
    """Bring the store's schema to this release's version (once per release, before the runs start; a run
    migrates too, under a lock, so this is for a deployment's init step)."""
    from consodam_pipeline.store.engine import connect_store, redacted_url, schema_version

    engine = connect_store()
    click.echo(f"{redacted_url(engine)}: schema at revision {schema_version(engine)}")


@main.group()
def bench() -> None:
    """Benchmarks that print a table and write JSON; figures are ratios against a same-run baseline."""


def bench_options(command: Callable[..., None]) -> Callable[..., None]:
    """--works, --seed, --json and --workdir: what every benchmark takes."""
    options = [
        click.option("--works", default=2000, show_default=True, help="Catalog size (works)."),
        click.option("--seed", default=7, show_default=True, help="Catalog generator seed."),
        click.option(
            "--json",
            "json_path",
            type=click.Path(path_type=Path),
            default=None,
            help="Write the figures here.",
        ),
        click.option(
            "--workdir",
            type=click.Path(path_type=Path),
            default=Path(".consodam/bench"),
            show_default=True,
            help="Generated catalogs are kept here and reused.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@bench.command("ingest")
@bench_options
@click.option(
    "--repeats",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Full ingests, each on a fresh store between two floors; the median ratio counts.",
)
def bench_ingest(works: int, seed: int, json_path: Path | None, workdir: Path, repeats: int) -> None:
    """(a) transfer floor, (b) full ingest, (c) incremental after 0.1% change, (d) one sensor tick."""
    from consodam_pipeline.bench.ingest import run

    run(works, seed, json_path, workdir, repeats)


@bench.command("sandbox")
@bench_options
def bench_sandbox_pages(works: int, seed: int, json_path: Path | None, workdir: Path) -> None:
    """Catalog generation time and page latency of both sandboxes (500 per page)."""
    from consodam_pipeline.bench.sandbox import run

    run(works, seed, json_path, workdir)


@bench.command("rights")
@bench_options
def bench_rights(works: int, seed: int, json_path: Path | None, workdir: Path) -> None:
    """The rights matrix and the restriction plan vs a naive per-row implementation of the same rules."""
    from consodam_pipeline.bench.rights import run

    run(works, seed, json_path, workdir)


@bench.command("workflow")
@bench_options
def bench_workflow(works: int, seed: int, json_path: Path | None, workdir: Path) -> None:
    """Title packages over every edition (column-wise) vs the readable rules one edition at a time."""
    from consodam_pipeline.bench.workflow import run

    run(works, seed, json_path, workdir)


@bench.command("launch")
@bench_options
def bench_launch(works: int, seed: int, json_path: Path | None, workdir: Path) -> None:
    """The launch collections' plan and every title sheet in the window vs the readable per-edition plan."""
    from consodam_pipeline.bench.launch import run

    run(works, seed, json_path, workdir)


@bench.command("writes")
@bench_options
def bench_writes(works: int, seed: int, json_path: Path | None, workdir: Path) -> None:
    """The backfill's writes under faults, then clean: duplicates, missing, stale and pending items counted."""
    from consodam_pipeline.bench.writes import run

    run(works, seed, json_path, workdir)


@bench.command("peers")
@bench_options
@click.option("--repeats", default=1, show_default=True, help="Runs of each side; the fastest counts.")
def bench_peers(works: int, seed: int, json_path: Path | None, workdir: Path, repeats: int) -> None:
    """consodam's first ingest vs dlt's rest_api source into duckdb, each a process, on one sandbox."""
    from consodam_pipeline.bench.peers import run

    run(works, seed, json_path, workdir, repeats)


@bench.command("audit")
@bench_options
@click.option("--postgres", is_flag=True, help="Run the lineage store on a throwaway PostgreSQL cluster.")
@click.option(
    "--ranges", default=0, show_default=True, help="Also run the backfill as this many concurrent ranges."
)
def bench_audit(
    works: int, seed: int, json_path: Path | None, workdir: Path, postgres: bool, ranges: int
) -> None:
    """Single-run backfill of every period, ledger size, audit and as-of query latency (median, p99)."""
    from consodam_pipeline.bench.audit import run

    run(works, seed, json_path, workdir, postgres, ranges)


@bench.command("latency")
@bench_options
@click.option("--repeat", default=10, show_default=True, help="Changes of each kind.")
@click.option(
    "--kinds",
    default="approval,rejection,new_version,milestone,rights,date_move",
    show_default=True,
    help="The kinds of change, comma-separated.",
)
@click.option("--rest", "rest_s", default=180.0, show_default=True, help="Seconds of rest to count requests.")
def bench_latency(
    works: int, seed: int, json_path: Path | None, workdir: Path, repeat: int, kinds: str, rest_s: float
) -> None:
    """Start what `make dev` starts; make each kind of change through /_sandbox/ and time it to the other
    system (p50/p95), with the requests per minute each API receives at rest."""
    from consodam_pipeline.bench.latency import parse_kinds, run
    from consodam_pipeline.processes import stop_on_signals

    with stop_on_signals():
        run(works, seed, json_path, workdir, repeat, parse_kinds(kinds), rest_s)


if __name__ == "__main__":
    main()
