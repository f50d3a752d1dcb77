"""Link rules, the audit API and CLI, on SQLite and PostgreSQL."""

from datetime import UTC, datetime

import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from consodam_pipeline.audit.answer import edition_audit
from consodam_pipeline.cli import main
from consodam_pipeline.derived.link_history import APPROVAL, link_changes
from consodam_pipeline.domain.links import Approval, pick, timeline
from consodam_pipeline.store.engine import connect_store
from consodam_pipeline.store.ledger import AuditEvent
from consodam_pipeline.store.lineage import LineageStore


def approval(
    asset: str, version: int, at: str, specific: bool = True, revoked: str | None = None
) -> Approval:
    return Approval(f"{asset}{version}", asset, version, at, "art.director", specific, revoked)


def test_edition_specific_beats_work_wide() -> None:
    chosen = pick([approval("work", 1, "2024-05-01", specific=False), approval("ed", 1, "2020-01-01")])
    assert chosen is not None and chosen.original_asset_id == "ed"


def test_newest_approved_version_then_latest_approval_wins() -> None:
    items = [approval("a", 1, "2024-01-01"), approval("a", 2, "2024-03-01"), approval("b", 1, "2024-02-01")]
    assert pick(items) == items[1]
    assert pick(items, as_of="2024-02-15") == items[2]
    assert pick(items, as_of="2023-12-31") is None
    tie = [approval("a", 1, "2024-01-01"), approval("b", 1, "2024-01-01")]
    assert pick(tie) == pick(list(reversed(tie))) == tie[1]


def test_a_rejection_ends_an_approval() -> None:
    items = [approval("a", 1, "2024-01-01"), approval("a", 2, "2024-03-01", revoked="2024-04-01")]
    assert pick(items, as_of="2024-03-15") == items[1]
    assert pick(items, as_of="2024-05-01") == items[0]
    assert [(t, c.version if c else None) for t, c in timeline(items)] == [
        ("2024-01-01", 1),
        ("2024-03-01", 2),
        ("2024-04-01", 1),
    ]


MOMENTS = st.sampled_from([f"2024-0{m}-0{d}T00:00:00.000Z" for m in range(1, 4) for d in range(1, 4)])


@st.composite
def approvals_of_one_slot(draw: st.DrawFn) -> list[Approval]:
    items = []
    for _ in range(draw(st.integers(1, 7))):
        asset, version = draw(st.sampled_from("abc")), draw(st.integers(1, 3))
        at = draw(MOMENTS)
        revoked = draw(st.one_of(st.none(), MOMENTS.filter(at.__lt__)))
        items.append(
            Approval(
                f"{asset}{version}",
                asset,
                version,
                at,
                draw(st.sampled_from(["x", "y"])),
                asset != "c",
                revoked,
            )
        )
    return list(dict.fromkeys(items))


@settings(max_examples=300, deadline=None)
@given(st.lists(approvals_of_one_slot(), min_size=1, max_size=4))
def test_column_wise_timelines_follow_the_rules(slots: list[list[Approval]]) -> None:
    """The frame pass that backfills the ledger changes links exactly when domain.links.timeline does."""
    rows = [
        {
            "product_id": slot,
            "role": "front_cover",
            "asset_id": a.asset_id,
            "original_asset_id": a.original_asset_id,
            "version": a.version,
            "at": a.approved_at,
            "by": a.approved_by,
            "edition_specific": a.edition_specific,
            "revoked_at": a.revoked_at,
        }
        for slot, items in enumerate(slots)
        for a in items
    ]
    attached = pl.DataFrame(rows).with_row_index("candidate").with_columns(pl.col("candidate").cast(pl.Int64))
    changes = link_changes(attached).join(attached.select("candidate", *APPROVAL), on="candidate", how="left")
    for slot, items in enumerate(slots):
        expected = [(moment, chosen) for moment, chosen in timeline(items)]
        got = [
            (
                r["moment"],
                None
                if r["candidate"] is None
                else Approval(
                    r["asset_id"],
                    r["original_asset_id"],
                    r["version"],
                    r["at"],
                    r["by"],
                    r["edition_specific"],
                    r["revoked_at"],
                ),
            )
            for r in changes.filter(pl.col("product_id") == slot).sort("moment").iter_rows(named=True)
        ]
        assert got == expected


def test_ledger_ids_do_not_depend_on_how_the_event_was_built() -> None:
    from consodam_pipeline.store.ledger import events_frame

    link = {
        "approved_at": "2024-01-01T00:00:00.000Z",
        "approved_by": "Zoë",
        "asset_id": "c1",
        "original_asset_id": "c1",
        "scope": "edition",
        "version": 1,
    }
    event = AuditEvent(
        "link_created",
        ts("2024-01-01"),
        isbn13="9780306406157",
        work_id="7",
        dam_asset_id="c1",
        dam_version=1,
        role="front_cover",
        after=link,
    )
    encoded = pl.DataFrame([link]).select(pl.struct(sorted(link)).struct.json_encode())
    assert events_frame([event])["after_json"][0] == encoded.item()
    assert event.event_id == events_frame([event])["event_id"][0]
    assert event.event_id != AuditEvent("link_created", ts("2024-01-02"), after=link).event_id


def ts(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def seed_ledger(store: LineageStore, isbn: str) -> None:
    old = {"asset_id": "c1", "version": 1, "approved_by": "ed", "approved_at": "2024-01-01T00:00:00Z"}
    new = {"asset_id": "c2", "version": 2, "approved_by": "ad", "approved_at": "2025-06-01T00:00:00Z"}
    events = [
        AuditEvent(
            "version_approved",
            ts("2024-01-01"),
            isbn13=isbn,
            dam_asset_id="c1",
            dam_version=1,
            role="front_cover",
            actor="ed",
            after={"status": "approved"},
        ),
        AuditEvent(
            "link_created",
            ts("2024-01-01"),
            isbn13=isbn,
            dam_asset_id="c1",
            dam_version=1,
            role="front_cover",
            after=old,
        ),
        AuditEvent(
            "link_written",
            ts("2024-01-02"),
            isbn13=isbn,
            dam_asset_id="c1",
            dam_version=1,
            role="front_cover",
            run_id="run-aaaa1111",
            after={"resource_id": 5},
        ),
        AuditEvent(
            "link_superseded",
            ts("2025-06-01"),
            isbn13=isbn,
            dam_asset_id="c1",
            dam_version=1,
            role="front_cover",
            after=old,
        ),
        AuditEvent(
            "link_created",
            ts("2025-06-01"),
            isbn13=isbn,
            dam_asset_id="c2",
            dam_version=2,
            role="front_cover",
            before=old,
            after=new,
        ),
    ]
    with store.engine.begin() as conn:
        store.ledger.record(conn, events)


def test_audit_answers_as_of_any_date(store_url: str) -> None:
    store = LineageStore(connect_store(store_url))
    isbn = "9780306406157"
    seed_ledger(store, isbn)
    now = edition_audit(store, "978-0-306-40615-7")
    assert [(link.role, link.asset_id, link.version) for link in now.live] == [("front_cover", "c2", 2)]
    between = edition_audit(store, isbn, ts("2024-12-31"))
    assert [(link.asset_id, link.approved_by, link.written_by_runs) for link in between.live] == [
        ("c1", "ed", ["run-aaaa1111"])
    ]
    assert edition_audit(store, isbn, ts("2023-01-01")).live == []
    assert [e["event_type"] for e in now.history] == [
        "version_approved",
        "link_created",
        "link_written",
        "link_superseded",
        "link_created",
    ]


def test_audit_cli(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path}/lineage.db"
    seed_ledger(LineageStore(connect_store(url)), "9780306406157")
    runner = CliRunner()
    table = runner.invoke(main, ["audit", "9780306406157", "--store-url", url])
    assert table.exit_code == 0 and "front_cover" in table.output and "v2 (c2)" in table.output
    as_of = runner.invoke(
        main, ["audit", "0-306-40615-2", "--as-of", "2024-06-01", "--json", "--store-url", url]
    )
    assert as_of.exit_code == 0 and '"asset_id": "c1"' in as_of.output
    bad = runner.invoke(main, ["audit", "9780306406158", "--store-url", url])
    assert bad.exit_code == 2 and "bad check digit" in bad.output


def test_dam_times_in_any_iso_form_become_naive_utc() -> None:
    from consodam_pipeline.derived.link_history import parse_moments

    parsed = parse_moments(pl.Series(["2024-05-01T10:00:00.250Z", "2024-05-01T12:00:00+02:00", None]))
    assert parsed.to_list() == [datetime(2024, 5, 1, 10, 0, 0, 250_000), datetime(2024, 5, 1, 10, 0), None]
