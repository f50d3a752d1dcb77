"""`consodam audit ISBN` and `consodam audit report`: reads of the lineage store that never create one.

Exit codes: 0 answered; 1 the store could not be read (unreachable, locked); 2 bad input (an invalid ISBN, a
bad --as-of, a setting that names no store); 3 a valid ISBN the store has never heard of. Every error is one
line on stderr naming the setting or the value.
"""

from __future__ import annotations

import difflib
import sys
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any, NoReturn

import click

EXIT_UNREACHABLE = 1
EXIT_BAD_INPUT = 2
EXIT_UNKNOWN_ISBN = 3


class Moment(click.ParamType):
    """A date (the end of that day, UTC), or a datetime with `Z`, an offset, or none (UTC)."""

    name = "moment"

    def __init__(self, day_end: bool = True) -> None:
        self.day_end = day_end

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        if isinstance(value, datetime):
            return value
        text = str(value).strip()
        try:
            if len(text) == 10:
                day = date.fromisoformat(text)
                if self.day_end:
                    return datetime.combine(day, time.max, UTC)
                return datetime.combine(day, time.min, UTC)
            moment = datetime.fromisoformat(text)
        except ValueError:
            self.fail(
                f"{text!r} is not a date or a datetime (2024-06-30, 2024-06-30T12:00:00Z, "
                "2024-06-30T14:00:00+02:00)",
                param,
                ctx,
            )
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


IMPLIED = "consodam.audit.implied_show"


class DefaultToShow(click.Group):
    """`consodam audit ISBN …` runs `show`; `consodam audit report …` runs the report."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["show", *args]
            ctx.meta[IMPLIED] = True
        return super().parse_args(ctx, args)


class AsTyped(click.Context):
    """A context that names the command as the user typed it: `consodam audit ISBN`, where `show` was implied,
    so a usage error never names a subcommand the user did not type."""

    @property
    def command_path(self) -> str:
        path = super().command_path
        if self.meta.get(IMPLIED) and self.parent is not None:
            return self.parent.command_path
        return path


class ShowCommand(click.Command):
    context_class = AsTyped


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"consodam audit: {message}", err=True)
    sys.exit(code)


def open_store(store_url: str | None) -> tuple[Any, str]:
    """(engine, redacted URL) on an existing store, or a one-line error and its exit code."""
    from consodam_pipeline.store.access import (
        StoreSettingError,
        StoreUnreachable,
        reading_engine,
        store_setting,
    )

    setting = store_setting(store_url)
    try:
        return reading_engine(setting), setting.shown
    except StoreSettingError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    except StoreUnreachable as exc:
        fail(str(exc), EXIT_UNREACHABLE)


def run_read(read: Any) -> Any:
    """Run a read; a store that fails mid-read is one line too."""
    import sqlalchemy as sa

    from consodam_pipeline.store.access import redact

    try:
        return read()
    except sa.exc.DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        fail(f"the lineage store could not be read: {redact(reason)}", EXIT_UNREACHABLE)


STORE_OPTION = click.option(
    "--store-url",
    default=None,
    help="Lineage store URL (default: CONSODAM_STORE_URL, else $CONSODAM_HOME/lineage.db).",
)


@click.group(cls=DefaultToShow)
def audit() -> None:
    """`consodam audit ISBN [--as-of T]` — everything about one edition at any moment;
    `consodam audit report` — every change in a window, for a compliance review."""


@audit.command("show", cls=ShowCommand)
@click.argument("isbn")
@click.option(
    "--as-of",
    "as_of",
    type=Moment(),
    default=None,
    help="Answer as of this moment: a date (its end, UTC) or a datetime with Z or an offset.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (schema consodam.audit/1).")
@STORE_OPTION
def show(isbn: str, as_of: datetime | None, as_json: bool, store_url: str | None) -> None:
    """Title record, sales rights, linked versions, writes, package, stage, tasks, collections and usage."""
    from consodam_pipeline.audit.answer import edition_audit
    from consodam_pipeline.audit.text import render
    from consodam_pipeline.domain.isbn import InvalidISBNError, normalize_isbn

    try:
        isbn13 = normalize_isbn(isbn)
    except InvalidISBNError as exc:
        fail(str(exc), EXIT_BAD_INPUT)
    if as_of is not None and as_of > datetime.now(UTC):
        fail(
            f"--as-of {as_of:%Y-%m-%dT%H:%M:%SZ} is in the future: ask about now (no --as-of) or "
            "an earlier moment",
            EXIT_BAD_INPUT,
        )
    engine, _ = open_store(store_url)
    answer = run_read(lambda: edition_audit(engine, isbn13, as_of))
    if not answer.known and not as_json:
        fail(render(answer), EXIT_UNKNOWN_ISBN)
    click.echo(answer.as_json() if as_json else render(answer))
    if not answer.known:
        sys.exit(EXIT_UNKNOWN_ISBN)


@audit.command("report")
@click.option(
    "--from", "start", type=Moment(day_end=False), required=True, help="First day (or moment), UTC."
)
@click.option("--to", "end", type=Moment(), required=True, help="Last day (or moment), UTC; inclusive.")
@click.option("--imprint", default=None, help="Only editions of this imprint.")
@click.option("--isbn", "isbns", multiple=True, help="Only these editions (repeatable).")
@click.option("--event", "events", multiple=True, help="Only these event types (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet", "html"]), required=True)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Where to write it (default: audit-report-FROM-TO.FORMAT; csv may go to '-').",
)
@STORE_OPTION
def report(
    start: datetime,
    end: datetime,
    imprint: str | None,
    isbns: tuple[str, ...],
    events: tuple[str, ...],
    fmt: str,
    out: Path | None,
    store_url: str | None,
) -> None:
    """Every change in the window: what, before and after, who approved, which run, into which system."""
    from consodam_pipeline.audit.report import (
        EVENT_SYSTEMS,
        ReportQuery,
        report_frame,
        to_csv,
        unknown_subjects,
        write_report,
    )
    from consodam_pipeline.domain.isbn import InvalidISBNError, normalize_isbn

    if end < start:
        fail(f"--to {end:%Y-%m-%d} is before --from {start:%Y-%m-%d}", EXIT_BAD_INPUT)
    for event in events:
        if event not in EVENT_SYSTEMS:
            close = difflib.get_close_matches(event, EVENT_SYSTEMS, n=3)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            fail(
                f"--event {event}: not an event type ({hint}`consodam audit events` lists them)",
                EXIT_BAD_INPUT,
            )
    try:
        wanted = tuple(normalize_isbn(i) for i in isbns)
    except InvalidISBNError as exc:
        fail(f"--isbn: {exc}", EXIT_BAD_INPUT)
    engine, shown = open_store(store_url)
    missing = run_read(lambda: unknown_subjects(engine, wanted, imprint))
    if missing:
        fail(missing, EXIT_UNKNOWN_ISBN if wanted and "ISBN" in missing else EXIT_BAD_INPUT)
    query = ReportQuery(start, end, imprint, wanted, events)
    report = run_read(lambda: report_frame(engine, query))
    if out is not None and str(out) == "-" and fmt == "csv":
        click.echo(to_csv(report), nl=False)
        return
    target = out or Path(f"audit-report-{start:%Y%m%d}-{end:%Y%m%d}.{fmt}")
    written = write_report(report, fmt, target, query, shown)
    editions = report["isbn13"].drop_nulls().n_unique()
    pages = (
        f" ({len(written)} pages of 500 editions: {written[0].name} … {written[-1].name})"
        if len(written) > 1
        else ""
    )
    click.echo(f"{report.height} changes across {editions} editions → {target}{pages}", err=True)


@audit.command("events")
def list_events() -> None:
    """The event types the ledger records, and the system each change lives in."""
    from consodam_pipeline.audit.report import EVENT_SYSTEMS

    for event, system in EVENT_SYSTEMS.items():
        click.echo(f"{event:28} {system}")
