"""What a complete title package is (F5) and what a production milestone needs (F2): the rules, loaded from
one validated file, and the readable reference evaluation of one edition's requirement.

The rules live in `rules.toml` beside this module (override: CONSODAM_RULES). A bad file
fails at load with the file, the field and the reason. No I/O here beyond reading that file.

Evaluating a requirement for an edition (the column-wise pass in defs/workflow/packages.py applies the
same rules to every edition at once, and a hypothesis test holds the two together):
1. Candidates are DAM versions whose ONIX content type is one the requirement names, in its mode, tagged
   with the edition's ISBN (edition-specific) or only with its work (work-wide).
2. Of each candidate asset, its newest approved version counts, and its newest version as the one in
   progress. Edition-specific candidates are preferred; then the most recent approval; ties to the
   larger asset id, so the choice never depends on row order.
3. The requirement is `approved` when a counted approved version passes every technical requirement;
   otherwise `in_review` when a newest version awaits review (draft or in review); otherwise
   `fails_technical` (an approved version fails one: which, and why); otherwise `rejected` (the newest
   version was rejected); otherwise `missing`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from consodam_pipeline.domain.launch import LaunchWindow
from consodam_pipeline.domain.onix import ResourceContentType, ResourceMode, UnknownCodeError

RULES_ENV = "CONSODAM_RULES"
DEFAULT_RULES = Path(__file__).with_name("rules.toml")
FormatFamily = Literal["print", "ebook", "audio"]
Status = Literal["approved", "in_review", "fails_technical", "rejected", "missing"]
STATUS_ORDER: tuple[Status, ...] = ("approved", "in_review", "fails_technical", "rejected", "missing")
EVERYTHING = "*"


class RulesError(ValueError):
    """A rules file that cannot be used: names the file, the field and the reason."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Requirement(_Strict):
    id: str
    name: str
    content_types: list[str] = Field(min_length=1)
    mode: str
    file_formats: list[str] = Field(default_factory=list)
    colour_spaces: list[str] = Field(default_factory=list)
    min_width_px: int | None = Field(default=None, gt=0)
    min_height_px: int | None = Field(default=None, gt=0)
    square: bool = False
    min_pages: int | None = Field(default=None, gt=0)
    min_duration_s: float | None = Field(default=None, gt=0)

    @field_validator("content_types")
    @classmethod
    def _known_content_types(cls, codes: list[str]) -> list[str]:
        for code in codes:
            _parse(ResourceContentType, code)
        return codes

    @field_validator("mode")
    @classmethod
    def _known_mode(cls, code: str) -> str:
        _parse(ResourceMode, code)
        return code


def _parse(code_list: type[ResourceContentType] | type[ResourceMode], code: str) -> None:
    try:
        code_list.parse(code)
    except UnknownCodeError as exc:
        raise ValueError(str(exc)) from None


class FormatRules(_Strict):
    requires: list[Requirement] = Field(min_length=1)

    @field_validator("requires")
    @classmethod
    def _unique_ids(cls, requires: list[Requirement]) -> list[Requirement]:
        ids = [r.id for r in requires]
        if len(ids) != len(set(ids)):
            raise ValueError(f"requirement ids repeat: {sorted({i for i in ids if ids.count(i) > 1})}")
        return requires


class Milestone(_Strict):
    name: str
    stage: str
    needs: list[str] = Field(min_length=1)
    next_stage: str


class Rules(_Strict):
    stages: list[str] = Field(min_length=2)
    formats: dict[FormatFamily, FormatRules]
    milestones: list[Milestone] = Field(default_factory=list)
    launch: LaunchWindow = Field(default_factory=LaunchWindow)

    @model_validator(mode="after")
    def _consistent(self) -> Rules:
        if len(set(self.stages)) != len(self.stages):
            raise ValueError("stages repeat")
        known = {r.id for f in self.formats.values() for r in f.requires}
        for i, milestone in enumerate(self.milestones):
            where = f"milestones[{i}] ({milestone.name!r})"
            if milestone.stage not in self.stages:
                raise ValueError(f"{where}: stage {milestone.stage!r} is not in stages")
            following = self.stages.index(milestone.stage) + 1
            if following >= len(self.stages) or self.stages[following] != milestone.next_stage:
                expected = self.stages[following] if following < len(self.stages) else "none (last stage)"
                raise ValueError(
                    f"{where}: next_stage {milestone.next_stage!r} skips or reverses a stage; "
                    f"the stage after {milestone.stage!r} is {expected!r}"
                )
            unknown = [n for n in milestone.needs if n != EVERYTHING and n not in known]
            if unknown:
                raise ValueError(f"{where}: needs unknown requirement(s) {unknown}; known: {sorted(known)}")
        stages = [m.stage for m in self.milestones]
        if len(stages) != len(set(stages)):
            raise ValueError("two milestones share a stage")
        return self

    def requirements(self, family: str) -> list[Requirement]:
        rules = self.formats.get(family)  # type: ignore[call-overload]
        return list(rules.requires) if rules is not None else []

    def milestone_at(self, stage: str | None) -> Milestone | None:
        return next((m for m in self.milestones if m.stage == stage), None)

    def needed(self, family: str, milestone: Milestone) -> list[Requirement]:
        """The requirements of this format that the milestone needs."""
        return [
            r for r in self.requirements(family) if EVERYTHING in milestone.needs or r.id in milestone.needs
        ]

    def stage_index(self, stage: str | None) -> int | None:
        return self.stages.index(stage) if stage in self.stages else None


def load_rules(path: str | Path | None = None) -> Rules:
    """The rules in force: `path`, else CONSODAM_RULES, else the file shipped with consodam."""
    chosen = Path(path or os.environ.get(RULES_ENV) or DEFAULT_RULES)
    try:
        stamp = chosen.stat().st_mtime_ns
    except OSError as exc:
        raise RulesError(f"rules {chosen}: cannot be read ({exc.strerror}); set {RULES_ENV}") from None
    return _load(chosen, stamp)


@cache
def _load(path: Path, _stamp: int) -> Rules:
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(f"rules {path}: not valid TOML: {exc}") from None
    try:
        return Rules.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "(top level)"
        reason = first["msg"].removeprefix("Value error, ")
        raise RulesError(f"rules {path}: {field}: {reason}") from None


@dataclass(frozen=True)
class Candidate:
    """A DAM asset version that could meet a requirement, with its rendition facts."""

    asset_id: str
    original_asset_id: str
    version: int
    approval_status: str
    approved_at: str | None
    edition_specific: bool
    mime_type: str | None = None
    width_px: int | None = None
    height_px: int | None = None
    colour_space: str | None = None
    page_count: int | None = None
    duration_s: float | None = None


@dataclass(frozen=True)
class Evaluation:
    status: Status
    detail: str
    asset_id: str | None = None
    version: int | None = None


def technical_failures(requirement: Requirement, v: Candidate) -> list[str]:
    """Every technical requirement the version fails, each with the value it has."""
    failures = []
    if requirement.file_formats and v.mime_type not in requirement.file_formats:
        failures.append(
            f"file format {v.mime_type or 'unknown'}, needs {' or '.join(requirement.file_formats)}"
        )
    if requirement.colour_spaces and v.colour_space not in requirement.colour_spaces:
        failures.append(
            f"colour space {v.colour_space or 'unknown'}, needs {' or '.join(requirement.colour_spaces)}"
        )
    if requirement.min_width_px and (v.width_px or 0) < requirement.min_width_px:
        failures.append(f"{v.width_px or 0} px wide, needs at least {requirement.min_width_px}")
    if requirement.min_height_px and (v.height_px or 0) < requirement.min_height_px:
        failures.append(f"{v.height_px or 0} px high, needs at least {requirement.min_height_px}")
    if requirement.square and (v.width_px is None or v.width_px != v.height_px):
        failures.append(f"not square ({v.width_px or 0} × {v.height_px or 0} px)")
    if requirement.min_pages and (v.page_count or 0) < requirement.min_pages:
        failures.append(f"{v.page_count or 0} pages, needs at least {requirement.min_pages}")
    if requirement.min_duration_s and (v.duration_s or 0) < requirement.min_duration_s:
        failures.append(f"{int(v.duration_s or 0)} s long, needs at least {int(requirement.min_duration_s)}")
    return failures


def evaluate(requirement: Requirement, candidates: Iterable[Candidate]) -> Evaluation:
    """The status of one requirement for one edition, from the candidate versions (rules in the docstring)."""
    newest: dict[str, Candidate] = {}
    approved: dict[str, Candidate] = {}
    for c in candidates:
        if c.original_asset_id not in newest or c.version > newest[c.original_asset_id].version:
            newest[c.original_asset_id] = c
        current = approved.get(c.original_asset_id)
        if c.approval_status == "approved" and (current is None or c.version > current.version):
            approved[c.original_asset_id] = c
    passing = [c for c in approved.values() if not technical_failures(requirement, c)]
    if passing:
        best = _pick(passing, approval=True)
        return Evaluation("approved", f"approved {best.approved_at}", best.asset_id, best.version)
    pending = [c for c in newest.values() if c.approval_status in ("draft", "in_review")]
    if pending:
        best = _pick(pending, approval=False)
        return Evaluation(
            "in_review",
            f"v{best.version} is {best.approval_status.replace('_', ' ')}",
            best.asset_id,
            best.version,
        )
    if approved:
        best = _pick(list(approved.values()), approval=True)
        return Evaluation(
            "fails_technical", "; ".join(technical_failures(requirement, best)), best.asset_id, best.version
        )
    rejected = [c for c in newest.values() if c.approval_status == "rejected"]
    if rejected:
        best = _pick(rejected, approval=False)
        return Evaluation("rejected", f"v{best.version} was rejected", best.asset_id, best.version)
    return Evaluation("missing", "no asset in the DAM")


def _pick(versions: Sequence[Candidate], *, approval: bool) -> Candidate:
    """Edition-specific first; then the most recent approval (or the newest version); then the larger id."""
    if approval:
        return max(versions, key=lambda c: (c.edition_specific, c.approved_at or "", c.original_asset_id))
    return max(versions, key=lambda c: (c.edition_specific, c.version, c.original_asset_id))


def unmet(rules: Rules, family: str, stage: str | None, status: Mapping[str, str]) -> list[str]:
    """What the milestone at this stage still needs, as `requirement (status)`; [] when there is no
    milestone at the stage or it is met. `status`: requirement id → its status for the edition."""
    milestone = rules.milestone_at(stage)
    if milestone is None:
        return []
    return [
        f"{r.id} ({status.get(r.id, 'missing')})"
        for r in rules.needed(family, milestone)
        if status.get(r.id, "missing") != "approved"
    ]


def ready_to_advance(
    rules: Rules,
    stages: Mapping[int, str | None],
    families: Mapping[int, str],
    status: Mapping[int, Mapping[str, str]],
    held_back: Collection[int] = (),
) -> dict[int, str]:
    """The titles whose milestone (at their stage) is met, each with the one stage that follows: a title
    moves one stage at a time, and never while anything its milestone needs is unmet."""
    ready = {}
    for title, stage in stages.items():
        milestone = rules.milestone_at(stage)
        if title in held_back or milestone is None:
            continue
        if not unmet(rules, families[title], stage, status.get(title, {})):
            ready[title] = milestone.next_stage
    return ready
