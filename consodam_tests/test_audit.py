"""The audit as of any moment, facet by facet, on SQLite and PostgreSQL: a store holding one edition's life
(title and rights change, a cover is approved then replaced, restrictions, tags, a package, a stage advance, a
review task, a launch collection, a title sheet, usage) asked before, between and after the changes; and the
`consodam audit` command's answers, exit codes and one-line errors, with no file created by a read."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import polars as pl
import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st

from consodam_pipeline.audit.answer import edition_audit, rfc3339
from consodam_pipeline.audit.report import rfc3339_column
from consodam_pipeline.domain.canonical import canonical_json
from consodam_pipeline.store.engine import connect_store
from consodam_pipeline.store.ledger import AuditEvent
from consodam_pipeline.store.lineage import LineageStore
from consodam_tests.browser import browser_page

ISBN = "9781402894626"
WORK = "W-1"
T1 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
T2 = datetime(2024, 6, 1, 9, 0, tzinfo=UTC)
BEFORE, BETWEEN, AFTER = T1 - timedelta(days=1), T1 + timedelta(days=30), T2 + timedelta(days=30)
SCHEMA = Path(__file__).parents[1] / "docs" / "audit.schema.json"


def edition(title: str, rights: str, stage: str) -> dict[str, Any]:
    return {
        "isbn13": ISBN,
        "work_id": WORK,
        "product_id": 11,
        "title": title,
        "imprint": "Harbour Books",
        "product_form": "BC",
        "format_family": "print",
        "publishing_status": "04",
        "publication_date": "2024-09-01",
        "project_stage": stage,
        "sales_rights": rights,
        "for_sale_worldwide": rights == "WORLD",
    }


def version(asset_id: str, n: int, by: str) -> dict[str, Any]:
    return {
        "isbn13": ISBN,
        "work_id": WORK,
        "asset_id": asset_id,
        "original_asset_id": "A",
        "version": n,
        "role": "front_cover",
        "approval_status": "approved",
        "approved_by": by,
        "approved_at": "2024-02-28T10:00:00.000Z",
    }


def slot(state: Any, handle: str) -> dict[str, Any]:
    return {"state": state, "handle": handle}


def put(store: LineageStore, at: datetime, entity: str, records: dict[str, dict[str, Any]]) -> None:
    """Records of an entity as observed at `at` (keys absent from `records` are left as they were)."""
    frame = pl.DataFrame(
        [
            (k, hashlib.sha256(str(canonical_json(p)).encode()).hexdigest(), canonical_json(p))
            for k, p in records.items()
        ],
        schema={"record_key": pl.String, "content_hash": pl.String, "payload": pl.String},
        orient="row",
    )
    with store.engine.begin() as conn:
        store.history.apply_snapshot(
            conn, entity, frame, observed_at=at, complete=False, run_id=f"run-{at:%m}"
        )
        subjects = pl.DataFrame(
            {"record_key": list(records), "isbn13": [ISBN] * len(records), "work_id": [WORK] * len(records)}
        )
        store.history.add_subjects(conn, entity, subjects)


def events(store: LineageStore, *listed: AuditEvent) -> None:
    with store.engine.begin() as conn:
        store.ledger.record(conn, list(listed))


def link(kind: str, at: datetime, asset: str, n: int) -> AuditEvent:
    after = {"approved_by": "art@pub.example", "approved_at": "2024-02-28T10:00:00.000Z"}
    return AuditEvent(kind, at, ISBN, WORK, asset, n, "front_cover", "consodam", None, after, f"run-{at:%m}")


def life(url: str) -> LineageStore:
    """One edition's life: everything recorded at T1, and the changes at T2."""
    store = LineageStore(connect_store(url))
    put(store, T1, "edition", {"11": edition("Tide Lines", "WORLD", "Editorial")})
    put(store, T1, "dam_asset_version", {"A1": version("A1", 1, "art@pub.example")})
    put(store, T1, "dam_restriction", {"A1": slot({"countries": []}, "A1")})
    put(store, T1, "dam_title_tags", {"A1": slot({"imprint": "Harbour Books"}, "A1")})
    put(store, T1, "consonance_link", {f"{ISBN}|front_cover": slot({"version": 1}, "SR-1")})
    put(store, T1, "title_package", {ISBN: {"stage": "cover", "milestone": None, "requirements": []}})
    events(
        store,
        link("link_created", T1, "A1", 1),
        link("link_written", T1, "A1", 1),
        AuditEvent(
            "review_task_opened",
            T1,
            ISBN,
            WORK,
            "A1",
            1,
            "front_cover",
            "consodam",
            None,
            {"handle": "RT-1", "state": {"kind": "review", "milestone": "cover", "asset_id": "A1"}},
            "run-03",
        ),
    )
    put(store, T2, "edition", {"11": edition("Tide Lines: A Novel", "GB IE", "Production")})
    put(store, T2, "dam_asset_version", {"A2": version("A2", 2, "director@pub.example")})
    put(store, T2, "dam_restriction", {"A1": slot({"countries": ["US"]}, "A1")})
    put(store, T2, "consonance_link", {f"{ISBN}|front_cover": slot({"version": 2}, "SR-2")})
    put(store, T2, "title_package", {ISBN: {"stage": "complete", "milestone": "print", "requirements": []}})
    put(
        store,
        T2,
        "dam_collection_member",
        {f"Launch 2024-09|{ISBN}|A2": slot({"role": "front_cover"}, "C-9")},
    )
    put(store, T2, "dam_title_sheet", {ISBN: slot({"sha": "abc"}, "TS-1")})
    events(
        store,
        link("link_superseded", T2, "A1", 1),
        link("link_created", T2, "A2", 2),
        link("link_written", T2, "A2", 2),
        AuditEvent(
            "review_task_completed",
            T2,
            ISBN,
            WORK,
            "A1",
            1,
            "front_cover",
            "editor@pub.example",
            None,
            {"task_id": "RT-1", "decision": "approved"},
            "run-06",
        ),
        AuditEvent(
            "stage_advanced",
            T2,
            ISBN,
            WORK,
            None,
            None,
            None,
            "consodam",
            None,
            {"from": "Editorial", "to": "Production", "met_by": {}},
            "run-06",
        ),
    )
    usage = pl.DataFrame(
        [
            {
                "usage_id": "u1",
                "asset_id": "A2",
                "dam_version": 2,
                "role": "front_cover",
                "isbn13": ISBN,
                "work_id": WORK,
                "used_by": "web@pub.example",
                "channel": "web",
                "action": "download",
                "used_at": T2 + timedelta(days=1),
                "run_id": None,
            }
        ]
    )
    with store.engine.begin() as conn:
        store.usage.append(conn, usage.with_columns(pl.col("used_at").dt.replace_time_zone(None)))
    return store


def facets(answer: Any) -> dict[str, Any]:
    """What a reviewer reads off each facet of the answer."""
    states = {f: [r["state"] for r in rows] for f, rows in answer.written.items()}
    return {
        "title": answer.title and answer.title["title"],
        "rights": answer.sales_rights and answer.sales_rights["sales_rights"],
        "live": [(x.asset_id, x.version) for x in answer.live],
        "versions": [v["asset_id"] for v in answer.dam_versions],
        "restrictions": states["restrictions"],
        "tags": states["tags"],
        "resources": states["consonance_resources"],
        "collections": states["collections"],
        "package": answer.package and answer.package["stage"],
        "stage": answer.stage,
        "tasks": [t["status"] for t in answer.review_tasks],
        "sheet": answer.title_sheet and answer.title_sheet["handle"],
        "usage": [u["action"] for u in answer.usage],
    }


def test_every_facet_as_of_three_moments(store_url: str) -> None:
    store = life(store_url)
    before, between, after = (facets(edition_audit(store, ISBN, t)) for t in (BEFORE, BETWEEN, AFTER))
    assert not edition_audit(store, ISBN, BEFORE).known or before["title"] is None
    assert before == {
        "title": None,
        "rights": None,
        "live": [],
        "versions": [],
        "restrictions": [],
        "tags": [],
        "resources": [],
        "collections": [],
        "package": None,
        "stage": None,
        "tasks": [],
        "sheet": None,
        "usage": [],
    }
    assert between == {
        "title": "Tide Lines",
        "rights": "WORLD",
        "live": [("A1", 1)],
        "versions": ["A1"],
        "restrictions": [{"countries": []}],
        "tags": [{"imprint": "Harbour Books"}],
        "resources": [{"version": 1}],
        "collections": [],
        "package": "cover",
        "stage": "Editorial",
        "tasks": ["open"],
        "sheet": None,
        "usage": [],
    }
    assert after == {
        "title": "Tide Lines: A Novel",
        "rights": "GB IE",
        "live": [("A2", 2)],
        "versions": ["A1", "A2"],
        "restrictions": [{"countries": ["US"]}],
        "tags": [{"imprint": "Harbour Books"}],
        "resources": [{"version": 2}],
        "collections": [{"role": "front_cover"}],
        "package": "complete",
        "stage": "Production",
        "tasks": ["approved"],
        "sheet": "TS-1",
        "usage": ["download"],
    }


def test_the_json_answer_follows_its_schema_and_rfc3339(tmp_path: Path) -> None:
    store = life(f"sqlite:///{tmp_path / 'lineage.db'}")
    answer = json.loads(edition_audit(store, ISBN, AFTER).as_json())
    jsonschema.validate(answer, json.loads(SCHEMA.read_text()))
    stamps = [
        answer["as_of"],
        answer["title"]["recorded_since"],
        *(e["occurred_at"] for e in answer["history"]),
        *(u["used_at"] for u in answer["usage"]),
        *(v["since"] for v in answer["dam_versions"]),
    ]
    assert all(s.endswith("Z") and datetime.fromisoformat(s).tzinfo is not None for s in stamps), stamps


def consodam(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "consodam_pipeline.cli", *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=60,
    )


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("CONSODAM_STORE_URL", "CONSODAM_HOME")}
    return env | {"CONSODAM_HOME": str(home)}


def test_the_command_answers_as_of_with_z_offsets_and_dates(tmp_path: Path, cli_env: dict[str, str]) -> None:
    life(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}")
    for moment in ("2024-03-31", "2024-03-31T12:00:00Z", "2024-03-31T14:00:00+02:00", "2024-03-31 12:00"):
        done = consodam("audit", ISBN, "--as-of", moment, "--json", env=cli_env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["title"]["title"] == "Tide Lines"
    shown = consodam("audit", "978-1-4028-9462-6", env=cli_env)
    assert (
        shown.returncode == 0
        and "Tide Lines: A Novel" in shown.stdout
        and "front_cover v2 (A2)" in shown.stdout
    )


def test_each_mistake_is_one_line_with_its_exit_code(tmp_path: Path, cli_env: dict[str, str]) -> None:
    LineageStore(connect_store(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}"))  # a valid, empty store
    absent = tmp_path / "nowhere" / "x.db"
    cases = [
        ((ISBN,), {}, 3, "no record of it"),
        (("9781402894627",), {}, 2, "check digit"),
        ((ISBN, "--as-of", "30/06/2024"), {}, 2, "--as-of"),
        ((ISBN,), {"CONSODAM_STORE_URL": f"sqlite:///{absent}"}, 2, "CONSODAM_STORE_URL"),
        ((ISBN,), {"CONSODAM_STORE_URL": "sqlite:///tmp/x.db"}, 2, "four slashes"),
        ((ISBN,), {"CONSODAM_STORE_URL": "nonsense"}, 2, "CONSODAM_STORE_URL"),
        ((ISBN, "--store-url", "postgresql://u:hunter2@127.0.0.1:9/db"), {}, 1, "--store-url"),
        ((ISBN,), {"CONSODAM_HOME": str(tmp_path / "empty-home")}, 2, "CONSODAM_STORE_URL"),
        (
            ("report", "--from", "2024-01-01", "--to", "2024-12-31", "--format", "csv", "--event", "bogus"),
            {},
            2,
            "--event bogus",
        ),
        (
            ("report", "--from", "2024-01-01", "--to", "2024-12-31", "--format", "csv", "--imprint", "Nope"),
            {},
            2,
            "--imprint",
        ),
        (
            (
                "report",
                "--from",
                "2024-01-01",
                "--to",
                "2024-12-31",
                "--format",
                "csv",
                "--isbn",
                "9780306406157",
            ),
            {},
            3,
            "no record of ISBN 9780306406157",
        ),
    ]
    for args, extra, code, needle in cases:
        before = sorted(p for p in tmp_path.rglob("*") if "home" not in p.parts or p.is_file())
        done = consodam("audit", *args, env=cli_env | extra)
        message = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
        assert done.returncode == code, (args, done.stdout, done.stderr)
        assert needle in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr and "hunter2" not in done.stderr + done.stdout
        assert len(message) < 300 and len(done.stderr.strip().splitlines()) <= 4, done.stderr
        assert sorted(p for p in tmp_path.rglob("*") if "home" not in p.parts or p.is_file()) == before, args
    assert not absent.parent.exists() and not (Path.cwd() / "tmp" / "x.db").exists()


def test_the_command_starts_in_well_under_a_second(tmp_path: Path, cli_env: dict[str, str]) -> None:
    life(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}")
    imported = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "consodam_pipeline.cli", "audit", ISBN],
        env=cli_env,
        text=True,
        capture_output=True,
        timeout=60,
    )
    modules = {
        line.split("|")[-1].strip().split(".")[0] for line in imported.stderr.splitlines() if "|" in line
    }
    assert imported.returncode == 0 and not modules & {"dagster", "polars", "pyarrow", "httpx"}, modules
    started = time.perf_counter()
    assert consodam("audit", ISBN, env=cli_env).returncode == 0
    assert (
        time.perf_counter() - started < 5
    )  # a generous bound for a loaded CI machine; the bench measures it


def test_the_report_holds_every_change_in_the_window(tmp_path: Path, cli_env: dict[str, str]) -> None:
    life(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}")
    out = tmp_path / "june.csv"
    done = consodam(
        "audit",
        "report",
        "--from",
        "2024-06-01",
        "--to",
        "2024-06-30",
        "--format",
        "csv",
        "--out",
        str(out),
        env=cli_env,
    )
    assert done.returncode == 0, done.stderr
    rows = pl.read_csv(out, infer_schema=False)
    assert sorted(rows["event_type"]) == sorted(
        [
            "link_superseded",
            "link_created",
            "link_written",
            "review_task_completed",
            "stage_advanced",
            "asset_used",
        ]
    )
    written = rows.filter(pl.col("event_type") == "link_written").row(0, named=True)
    assert (written["system"], written["approved_by"], written["run_id"]) == (
        "consonance",
        "art@pub.example",
        "run-06",
    )
    assert written["title"] == "Tide Lines: A Novel" and written["imprint"] == "Harbour Books"
    parquet = tmp_path / "june.parquet"
    done = consodam(
        "audit",
        "report",
        "--from",
        "2024-06-01",
        "--to",
        "2024-06-30",
        "--format",
        "parquet",
        "--imprint",
        "harbour books",
        "--event",
        "stage_advanced",
        "--out",
        str(parquet),
        env=cli_env,
    )
    assert done.returncode == 0, done.stderr
    frame = pl.read_parquet(parquet)
    assert frame["event_type"].to_list() == ["stage_advanced"]
    assert json.loads(frame["after"][0])["to"] == "Production"
    march = consodam(
        "audit",
        "report",
        "--from",
        "2024-01-01",
        "--to",
        "2024-03-31",
        "--format",
        "csv",
        "--out",
        "-",
        env=cli_env,
    )
    assert "link_superseded" not in march.stdout and march.stdout.count("\n") == 1 + 3


def test_the_report_answers_on_postgresql(pg_database: str, tmp_path: Path, cli_env: dict[str, str]) -> None:
    life(pg_database)
    done = consodam(
        "audit",
        "report",
        "--from",
        "2024-06-01",
        "--to",
        "2024-06-30",
        "--format",
        "csv",
        "--out",
        "-",
        "--store-url",
        pg_database,
        env=cli_env,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1 + 6 and "stage_advanced" in done.stdout
    engine = sa.create_engine(pg_database)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM consodam.audit_ledger")).scalar_one() == 8
    engine.dispose()


@given(st.lists(st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)), max_size=20))
def test_the_report_writes_each_moment_as_the_answer_does(moments: list[datetime]) -> None:
    """The report formats its times column-wise; the answer one by one: the same text for every moment."""
    column = pl.DataFrame({"at": moments}, schema={"at": pl.Datetime("us")}).select(rfc3339_column("at"))
    assert column["at"].to_list() == [rfc3339(m) for m in moments]


def test_a_reviewer_reads_the_html_report_in_a_browser(tmp_path: Path, cli_env: dict[str, str]) -> None:
    life(f"sqlite:///{tmp_path / 'home' / 'lineage.db'}")
    report = tmp_path / "report.html"
    done = consodam(
        "audit",
        "report",
        "--from",
        "2024-01-01",
        "--to",
        "2024-12-31",
        "--format",
        "html",
        "--out",
        str(report),
        env=cli_env,
    )
    assert done.returncode == 0, done.stderr
    assert "<script" not in report.read_text() and "http" not in report.read_text().split("<body>")[0]
    with browser_page(width=1280, height=900) as page:
        page.goto(report.as_uri())
        assert page.locator("#total").inner_text() == "9"
        assert "link_written" in page.locator("#summary").inner_text()  # the summary comes first
        edition = page.locator(f"details.edition[data-isbn='{ISBN}']")
        assert "Tide Lines: A Novel (Harbour Books)" in edition.locator("summary").inner_text()
        written = edition.locator("tr.event[data-event='link_written']").last
        assert not written.is_visible()  # collapsed until a reviewer opens it
        edition.locator("summary").click()
        timeline = [row.get_attribute("data-event") for row in edition.locator("tr.event").all()]
        assert timeline[:3] == ["link_created", "link_written", "review_task_opened"] and len(timeline) == 9
        assert "art@pub.example" in written.locator(".approved-by").inner_text()
        assert "consonance" in written.inner_text() and "run-06" in written.inner_text()
        assert written.is_visible()
        # The fields that changed, readable: no JSON, a wide column, nothing wider than the window.
        changed = written.locator("td.d")
        assert "{" not in changed.inner_text() and "approved_at 2024-" in changed.inner_text()
        assert changed.bounding_box()["width"] >= 400
        assert page.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
