"""The blocking check behind every stage advance: a sample of editions recomputed one by one with the
readable rules (domain/packages.py) must agree with the column-wise package table."""

from __future__ import annotations

from typing import Any

import polars as pl

from consodam_pipeline.domain.packages import Candidate, PackageRules, evaluate
from consodam_pipeline.domain.roles import AssetRole

_CODES = {r.value: (r.content_type.value, r.mode.value) for r in AssetRole}


def package_disagreements(
    packages: pl.DataFrame,
    editions: pl.DataFrame,
    versions: pl.DataFrame,
    rules: PackageRules,
    sample: int,
    seed: int = 0,
) -> list[str]:
    chosen = editions if editions.height <= sample else editions.sample(sample, seed=seed)
    table = {(r["product_id"], r["requirement"]): r for r in packages.iter_rows(named=True)}
    usable = versions.filter(~pl.col("orphan_tag"))
    by_isbn: dict[str, list[dict[str, Any]]] = {}
    by_work: dict[int, list[dict[str, Any]]] = {}
    for v in usable.iter_rows(named=True):
        if v["isbn13"] is not None:
            by_isbn.setdefault(v["isbn13"], []).append(v)
        elif v["work_id"] is not None:
            by_work.setdefault(v["work_id"], []).append(v)
    problems = []
    for edition in chosen.iter_rows(named=True):
        pool = [*by_isbn.get(edition["isbn13"], []), *by_work.get(edition["work_id"], [])]
        for requirement in rules.requirements(edition["format_family"]):
            candidates = [
                _candidate(v) for v in pool if _fits(v, requirement.content_types, requirement.mode)
            ]
            expected = evaluate(requirement, candidates)
            got = table.get((edition["product_id"], requirement.id))
            if got is None or (got["status"], got["asset_id"], got["detail"]) != (
                expected.status,
                expected.asset_id,
                expected.detail,
            ):
                problems.append(
                    f"{edition['isbn13']} {requirement.id}: table {got and got['status']} "
                    f"{got and got['asset_id']}, rules {expected.status} {expected.asset_id}"
                )
    return problems


def _fits(v: dict[str, Any], content_types: list[str], mode: str) -> bool:
    codes = _CODES.get(str(v["role"]))
    return codes is not None and codes[0] in content_types and codes[1] == mode


def _candidate(v: dict[str, Any]) -> Candidate:
    return Candidate(
        v["asset_id"],
        v["original_asset_id"],
        v["version"],
        v["approval_status"],
        v["approved_at"],
        v["isbn13"] is not None,
        v["mime_type"],
        v["width_px"],
        v["height_px"],
        v["colour_space"],
        v["page_count"],
        v["duration_s"],
    )
