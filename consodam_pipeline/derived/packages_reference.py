"""The readable rules applied one edition at a time (domain/packages.py): the blocking check behind every
stage advance compares a sample of the column-wise package table with them, and `consodam bench workflow`
times them as the naive baseline."""

from __future__ import annotations

from typing import Any

import polars as pl

from consodam_pipeline.domain.packages import Candidate, Evaluation, Rules, evaluate
from consodam_pipeline.domain.roles import AssetRole

_CODES = {r.value: (r.content_type.value, r.mode.value) for r in AssetRole.with_onix_codes()}


def reference_packages(
    editions: pl.DataFrame, versions: pl.DataFrame, rules: Rules
) -> dict[tuple[int, str], Evaluation]:
    """(product id, requirement) → the readable rules' evaluation, one Python call per pair."""
    by_isbn: dict[str, list[dict[str, Any]]] = {}
    by_work: dict[int, list[dict[str, Any]]] = {}
    for v in versions.filter(~pl.col("orphan_tag")).iter_rows(named=True):
        if v["isbn13"] is not None:
            by_isbn.setdefault(v["isbn13"], []).append(v)
        elif v["work_id"] is not None:
            by_work.setdefault(v["work_id"], []).append(v)
    found = {}
    for edition in editions.iter_rows(named=True):
        pool = [*by_isbn.get(edition["isbn13"], []), *by_work.get(edition["work_id"], [])]
        for requirement in rules.requirements(edition["format_family"]):
            candidates = [
                _candidate(v) for v in pool if _fits(v, requirement.content_types, requirement.mode)
            ]
            found[(edition["product_id"], requirement.id)] = evaluate(requirement, candidates)
    return found


def package_disagreements(
    packages: pl.DataFrame,
    editions: pl.DataFrame,
    versions: pl.DataFrame,
    rules: Rules,
    sample: int,
    seed: int = 0,
) -> list[str]:
    """Rows of the package table that differ from the readable rules (a sample of editions, or all)."""
    chosen = editions if editions.height <= sample else editions.sample(sample, seed=seed)
    versions = versions.filter(  # the sample's own versions: the readable rules go through every one
        pl.col("isbn13").is_in(chosen["isbn13"].implode())
        | pl.col("work_id").is_in(chosen["work_id"].implode())
    )
    table = {(r["product_id"], r["requirement"]): r for r in packages.iter_rows(named=True)}
    isbns = dict(chosen.select("product_id", "isbn13").iter_rows())
    problems = []
    for (product_id, requirement), expected in reference_packages(chosen, versions, rules).items():
        got = table.get((product_id, requirement))
        if got is None or (got["status"], got["asset_id"], got["detail"]) != (
            expected.status,
            expected.asset_id,
            expected.detail,
        ):
            problems.append(
                f"{isbns[product_id]} {requirement}: table {got and got['status']} {got and got['asset_id']}, "
                f"rules {expected.status} {expected.asset_id}"
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
