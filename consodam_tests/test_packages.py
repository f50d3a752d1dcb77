"""Package rules (F5/F2): the rules file, its errors, the readable reference, and the column-wise evaluation
checked against the reference by hypothesis."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consodam_pipeline.derived.packages import evaluate_packages
from consodam_pipeline.derived.packages_reference import package_disagreements
from consodam_pipeline.domain.packages import (
    DEFAULT_RULES,
    RULES_ENV,
    Candidate,
    RulesError,
    evaluate,
    load_rules,
    ready_to_advance,
    technical_failures,
)
from consodam_pipeline.domain.roles import AssetRole
from consodam_pipeline.sync.dam_ingest import VERSION_SCHEMA

RULES = load_rules()


def test_the_shipped_rules_load_and_chain_the_stages() -> None:
    cover = RULES.milestone_at("Cover approval")
    assert cover is not None and cover.next_stage == "Production sign-off"
    assert [r.id for r in RULES.needed("print", cover)] == ["front_cover", "full_cover"]
    assert [r.id for r in RULES.needed("audio", cover)] == ["front_cover"]
    signoff = RULES.milestone_at("Production sign-off")
    assert (
        signoff is not None and len(RULES.needed("ebook", signoff)) == len(RULES.requirements("ebook")) == 3
    )


BAD_FILES = [
    (("stages = [", "stages = [["), "not valid TOML"),
    (
        ("min_width_px = 2400", 'min_width_px = "big"'),
        "audio.requires.0.min_width_px: Input should be a valid integer",
    ),
    (
        ('content_types = ["29", "02"]', 'content_types = ["29", "99x"]'),
        "formats.print.requires.1.content_types",
    ),
    (
        ('next_stage = "Production sign-off"', 'next_stage = "Files to press"'),
        "milestones[0] ('Cover approval'): next_stage 'Files to press' skips or reverses a stage",
    ),
    (
        ('needs = ["front_cover", "full_cover"]', 'needs = ["front_cover", "spine"]'),
        "unknown requirement(s) ['spine']",
    ),
    (
        ("square = true", 'square = true\nshade = "blue"'),
        "audio.requires.0.shade: Extra inputs are not permitted",
    ),
]


@pytest.mark.parametrize(("edit", "message"), BAD_FILES)
def test_a_bad_rules_file_fails_with_the_file_the_field_and_the_reason(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    bad = tmp_path / "rules.toml"
    bad.write_text(DEFAULT_RULES.read_text().replace(*edit, 1))
    with pytest.raises(RulesError) as info:
        load_rules(bad)
    assert str(bad) in str(info.value) and message in str(info.value)
    assert "Traceback" not in str(info.value) and len(str(info.value)) < 300


def test_the_rules_file_is_chosen_by_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(RULES_ENV, str(tmp_path / "nowhere.toml"))
    with pytest.raises(RulesError, match=f"nowhere.toml: cannot be read .* set {RULES_ENV}"):
        load_rules()


def test_each_technical_requirement_says_what_fails() -> None:
    cover = next(r for r in RULES.requirements("audio") if r.id == "front_cover")
    small = Candidate(
        "a", "a", 1, "approved", "2026-01-01T00:00:00.000Z", True, "image/png", 1400, 1500, "CMYK"
    )
    assert technical_failures(cover, small) == [
        "file format image/png, needs image/jpeg",
        "colour space CMYK, needs RGB",
        "1400 px wide, needs at least 2400",
        "1500 px high, needs at least 2400",
        "not square (1400 × 1500 px)",
    ]
    audio = next(r for r in RULES.requirements("audio") if r.id == "audio")
    assert technical_failures(audio, Candidate("b", "b", 1, "approved", None, True, "audio/mpeg")) == [
        "0 s long, needs at least 1"
    ]


def test_a_newer_version_in_review_beats_an_approved_one_that_fails() -> None:
    cover = next(r for r in RULES.requirements("audio") if r.id == "front_cover")
    old = Candidate(
        "v1", "a", 1, "approved", "2026-01-01T00:00:00.000Z", True, "image/jpeg", 1400, 1400, "RGB"
    )
    new = Candidate("v2", "a", 2, "in_review", None, True, "image/jpeg", 3000, 3000, "RGB")
    assert evaluate(cover, [old, new]).status == "in_review"
    assert evaluate(cover, [old]).status == "fails_technical"
    assert evaluate(cover, []).status == "missing"


# ---- column-wise == reference ----

ROLES = [
    AssetRole.FRONT_COVER,
    AssetRole.FULL_COVER,
    AssetRole.BACK_COVER,
    AssetRole.FULL_CONTENT,
    AssetRole.SAMPLE_CONTENT,
    AssetRole.AUDIO_SAMPLE,
    AssetRole.FULL_CONTENT_AUDIO,
]


MIMES = ["image/jpeg", "application/pdf", "application/epub+zip", "audio/mpeg"]


@st.composite
def catalog(draw: st.DrawFn) -> tuple[pl.DataFrame, pl.DataFrame]:
    families = {"BB": "print", "DG": "ebook", "AJ": "audio"}
    editions = [
        {
            "product_id": p,
            "isbn13": f"97800000000{p:02d}",
            "work_id": 1 + p % 2,
            "format_family": families[form],
        }
        for p, form in enumerate(draw(st.lists(st.sampled_from(list(families)), min_size=1, max_size=3)))
    ]
    versions = []
    for a in range(draw(st.integers(0, 8))):
        role = draw(st.sampled_from(ROLES))
        owner = draw(st.sampled_from(editions))
        specific = draw(st.booleans())
        mixed = draw(st.booleans())  # a later version re-tagged: another role, edition or scope
        for v in range(1, draw(st.integers(1, 3)) + 1):
            if mixed and v > 1:
                role = draw(st.sampled_from(ROLES))
                owner = draw(st.sampled_from(editions))
                specific = draw(st.booleans())
            status = draw(st.sampled_from(["approved", "in_review", "draft", "rejected"]))
            approved = status == "approved"
            versions.append(
                {
                    "asset_id": f"a{a}v{v}",
                    "original_asset_id": f"a{a}",
                    "version": v,
                    "role": role.value,
                    "isbn13": owner["isbn13"] if specific else None,
                    "work_id": owner["work_id"],
                    "approval_status": status,
                    "approved_by": "x" if approved else None,
                    "approved_at": f"2026-01-0{draw(st.integers(1, 3))}T00:00:00.000Z" if approved else None,
                    "mime_type": draw(st.sampled_from(MIMES)),
                    "width_px": draw(st.sampled_from([None, 1400, 2400, 3000])),
                    "colour_space": draw(st.sampled_from(["RGB", "CMYK", None])),
                    "page_count": draw(st.sampled_from([None, 0, 200])),
                    "duration_s": draw(st.sampled_from([None, 0.0, 600.0])),
                    "orphan_tag": False,
                }
            )
            versions[-1]["height_px"] = draw(st.sampled_from([versions[-1]["width_px"], 2400]))
    frame = pl.DataFrame(
        versions,
        schema={
            **{
                k: VERSION_SCHEMA[k]
                for k in (
                    "asset_id",
                    "original_asset_id",
                    "version",
                    "role",
                    "isbn13",
                    "work_id",
                    "approval_status",
                    "approved_by",
                    "approved_at",
                    "mime_type",
                    "width_px",
                    "height_px",
                    "colour_space",
                    "page_count",
                    "duration_s",
                )
            },
            "orphan_tag": pl.Boolean,
        },
    )
    edition_frame = pl.DataFrame(editions).with_columns(
        pl.lit(None, pl.String).alias(c) for c in ("imprint", "publication_date", "project_stage")
    )
    return edition_frame, frame


@settings(max_examples=120, deadline=None)
@given(data=catalog())
def test_the_column_wise_packages_equal_the_reference(data: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    editions, versions = data
    table = evaluate_packages(editions, versions, RULES)
    expected = sum(len(RULES.requirements(f)) for f in editions["format_family"])
    assert table.height == expected  # every edition × requirement of its format, once
    assert package_disagreements(table, editions, versions, RULES, sample=editions.height) == []


def _version(asset: str, version: int, role: AssetRole, status: str, **facts: Any) -> dict[str, Any]:
    approved = status == "approved"
    return {
        "asset_id": f"{asset}{version}",
        "original_asset_id": asset,
        "version": version,
        "role": role.value,
        "isbn13": "9780000000001",
        "work_id": 1,
        "approval_status": status,
        "approved_by": "x" if approved else None,
        "approved_at": "2026-01-01T00:00:00.000Z" if approved else None,
        "mime_type": None,
        "width_px": None,
        "height_px": None,
        "colour_space": None,
        "page_count": None,
        "duration_s": None,
        "orphan_tag": False,
    } | facts


def test_ties_go_to_the_larger_asset_id_whatever_the_order() -> None:
    """Three covers approved at the same moment, two EPUBs in review at the same version: the rules pick
    the larger asset id of each, in the column-wise table as in the readable reference."""
    cover = {"mime_type": "image/jpeg", "width_px": 3000, "height_px": 3000, "colour_space": "RGB"}
    rows = [_version(a, 1, AssetRole.FRONT_COVER, "approved", **cover) for a in ("b", "a", "c")]
    rows += [_version(a, 2, AssetRole.FULL_CONTENT, "in_review") for a in ("q", "p")]
    schema = {**{k: VERSION_SCHEMA[k] for k in rows[0] if k != "orphan_tag"}, "orphan_tag": pl.Boolean()}
    versions = pl.DataFrame(rows, schema=schema)
    editions = pl.DataFrame(
        [{"product_id": 1, "isbn13": "9780000000001", "work_id": 1, "format_family": "ebook"}]
    ).with_columns(pl.lit(None, pl.String).alias(c) for c in ("imprint", "publication_date", "project_stage"))
    table = evaluate_packages(editions, versions, RULES)
    chosen = dict(table.select("requirement", "asset_id").iter_rows())
    assert chosen == {"front_cover": "c1", "epub": "q2", "sample": None}
    assert package_disagreements(table, editions, versions, RULES, sample=1) == []


# ---- the stage gate: never advances while its milestone is unmet, does once it is met ----

GOOD = {
    "front_cover": ("image/jpeg", 3000, 3000, "RGB", None, None),
    "full_cover": ("application/pdf", 3600, 2700, "CMYK", None, None),
    "full_content": ("application/pdf", None, None, None, 300, None),
}
BAD = {
    "front_cover": ("image/png", 1400, 1400, "RGB", None, None),
    "full_cover": ("application/pdf", 3600, 2700, "RGB", None, None),
    "full_content": ("application/pdf", None, None, None, 0, None),
}
Step = tuple[str, int, str, bool]


def met_by_oracle(versions: list[dict[str, Any]], requirement_id: str) -> bool:
    """Independent of both implementations: some asset's newest approved version passes every check."""
    requirement = next(r for r in RULES.requirements("print") if r.id == requirement_id)
    codes = {r.value: (r.content_type.value, r.mode.value) for r in AssetRole.with_onix_codes()}
    newest_approved: dict[str, dict[str, Any]] = {}
    for v in versions:
        fits = codes[v["role"]][0] in requirement.content_types and codes[v["role"]][1] == requirement.mode
        if (
            fits
            and v["approval_status"] == "approved"
            and not v["deleted"]
            and (
                v["original_asset_id"] not in newest_approved
                or v["version"] > newest_approved[v["original_asset_id"]]["version"]
            )
        ):
            newest_approved[v["original_asset_id"]] = v
    return any(
        not technical_failures(
            requirement,
            Candidate(
                v["asset_id"],
                v["original_asset_id"],
                v["version"],
                "approved",
                v["approved_at"],
                True,
                v["mime_type"],
                v["width_px"],
                v["height_px"],
                v["colour_space"],
                v["page_count"],
                v["duration_s"],
            ),
        )
        for v in newest_approved.values()
    )


@settings(max_examples=80, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["upload", "approve", "reject", "delete", "milestone"]),
            st.integers(0, 20),
            st.sampled_from(sorted(GOOD)),
            st.booleans(),
        ),
        min_size=1,
        max_size=14,
    )
)
def test_a_stage_never_advances_while_its_milestone_is_unmet(steps: list[Step]) -> None:
    versions: list[dict[str, Any]] = []
    stage: str | None = "Design"
    for clock, (kind, pick, role, good) in enumerate(steps):
        apply_step(versions, kind, pick, role, good, clock)
        if kind == "milestone":
            stage = [m.stage for m in RULES.milestones][pick % len(RULES.milestones)]
        live = [v for v in versions if not v["deleted"]]
        frame = (
            pl.DataFrame(live or None, schema=VERSION_FRAME) if live else pl.DataFrame(schema=VERSION_FRAME)
        )
        for _ in RULES.milestones:  # the asset's passes: one stage at a time
            edition = EDITION.with_columns(pl.lit(stage).alias("project_stage"))
            status = {
                r["requirement"]: r["status"]
                for r in evaluate_packages(edition, frame, RULES).iter_rows(named=True)
            }
            milestone = RULES.milestone_at(stage)
            needs_met = milestone is not None and all(
                met_by_oracle(versions, r.id) for r in RULES.needed("print", milestone)
            )
            ready = ready_to_advance(RULES, {1: stage}, {1: "print"}, {1: status})
            assert (1 in ready) == needs_met, (stage, status)
            if 1 not in ready:
                break
            stage = ready[1]
        milestone = RULES.milestone_at(stage)
        assert milestone is None or not all(
            met_by_oracle(versions, r.id) for r in RULES.needed("print", milestone)
        )


def apply_step(
    versions: list[dict[str, Any]], kind: str, pick: int, role: str, good: bool, clock: int
) -> None:
    if kind == "upload":
        same = [v for v in versions if v["role"] == role]
        original = same[pick % len(same)]["original_asset_id"] if same and pick % 2 else f"{role}-{clock}"
        version = 1 + max((v["version"] for v in versions if v["original_asset_id"] == original), default=0)
        mime, width, height, colour, pages, duration = (GOOD if good else BAD)[role]
        versions.append(
            {
                "asset_id": f"{original}-v{version}",
                "original_asset_id": original,
                "version": version,
                "role": role,
                "isbn13": EDITION_ISBN,
                "work_id": 1,
                "approval_status": "in_review",
                "approved_by": None,
                "approved_at": None,
                "mime_type": mime,
                "width_px": width,
                "height_px": height,
                "colour_space": colour,
                "page_count": pages,
                "duration_s": duration,
                "orphan_tag": False,
                "deleted": False,
            }
        )
    elif kind in ("approve", "reject", "delete") and versions:
        target = versions[pick % len(versions)]
        if kind == "delete":
            target["deleted"] = True
        else:
            target["approval_status"] = "approved" if kind == "approve" else "rejected"
            target["approved_at"] = f"2026-01-01T00:00:{clock:02d}.000Z" if kind == "approve" else None
            target["approved_by"] = "reviewer" if kind == "approve" else None


EDITION_ISBN = "9780000000017"
EDITION = pl.DataFrame(
    {
        "product_id": [1],
        "isbn13": [EDITION_ISBN],
        "work_id": [1],
        "format_family": ["print"],
        "imprint": [None],
        "publication_date": [None],
    },
    schema_overrides={"imprint": pl.String, "publication_date": pl.String},
)
VERSION_FRAME = {
    **{
        k: VERSION_SCHEMA[k]
        for k in (
            "asset_id",
            "original_asset_id",
            "version",
            "role",
            "isbn13",
            "work_id",
            "approval_status",
            "approved_by",
            "approved_at",
            "mime_type",
            "width_px",
            "height_px",
            "colour_space",
            "page_count",
            "duration_s",
        )
    },
    "orphan_tag": pl.Boolean(),
    "deleted": pl.Boolean(),
}


def test_a_bad_rules_file_fails_the_code_location_at_load_and_a_command_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    from consodam_pipeline.definitions import defs

    bad = tmp_path / "rules.toml"
    bad.write_text(DEFAULT_RULES.read_text().replace("days_before = 90", 'days_before = "soon"', 1))
    monkeypatch.setenv(RULES_ENV, str(bad))
    with pytest.raises(RulesError, match=r"launch\.days_before"):
        defs()  # before any run: the code location does not load
    demo = subprocess.run(
        [str(Path(sys.executable).parent / "consodam"), "demo", "--works", "5"],
        env={**os.environ, "CONSODAM_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dh")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = demo.stderr.strip().splitlines()
    assert demo.returncode == 2 and len(lines) == 1, demo.stderr
    assert lines[0].startswith(f"consodam: rules {bad}: launch.days_before: ")
