"""DAM asset version → inventory record, with the reasons a version cannot be accepted."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import polars as pl

from consodam_pipeline.clients.opentext_dam import FIELD, DamAsset
from consodam_pipeline.domain.isbn import InvalidISBNError, normalize_isbn
from consodam_pipeline.domain.roles import ApprovalStatus, AssetRole

ENTITY = "dam_asset_version"
SOURCE = "dam"
ORPHAN_SOURCE = "dam_tags"
KNOWN_FIELDS = {
    FIELD + f
    for f in (
        "ROLE",
        "ISBN",
        "WORK_ID",
        "APPROVAL_STATUS",
        "APPROVED_BY",
        "APPROVED_AT",
        "LICENSE_FROM",
        "LICENSE_UNTIL",
        "APPROVAL_HISTORY",
    )
}

VERSION_SCHEMA: dict[str, pl.DataType] = {
    "asset_id": pl.String(),
    "original_asset_id": pl.String(),
    "version": pl.Int64(),
    "name": pl.String(),
    "mime_type": pl.String(),
    "role": pl.String(),
    "isbn13": pl.String(),
    "work_id": pl.Int64(),
    "approval_status": pl.String(),
    "approved_by": pl.String(),
    "approved_at": pl.String(),
    "approval_history": pl.List(pl.Struct({"status": pl.String(), "by": pl.String(), "at": pl.String()})),
    "license_from": pl.String(),
    "license_until": pl.String(),
    "security_policy_ids": pl.List(pl.Int64()),
    "tags": pl.String(),
    "modified_at": pl.String(),
}

COLUMN_DOCS = {
    "asset_id": "DAM id of this version (each version has its own id)",
    "original_asset_id": "id shared by every version of the asset",
    "role": "asset role (ONIX List 158 content type + List 159 mode)",
    "isbn13": "edition the asset is tagged with (null: shared by the work)",
    "is_latest": "the newest version of its asset",
    "tags": "other metadata fields as JSON (title tags, restrictions written by consodam)",
}


def _timestamp(value: Any, label: str, reasons: list[str]) -> str | None:
    if value in (None, ""):
        return None
    try:
        datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return str(value)
    except ValueError:
        reasons.append(f"malformed_date: {label} {value!r}")
        return None


def _day(value: Any, label: str, reasons: list[str]) -> str | None:
    if value in (None, ""):
        return None
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError:
        reasons.append(f"malformed_date: {label} {value!r} is not YYYY-MM-DD")
        return None


def version_record(asset: DamAsset) -> tuple[dict[str, Any] | None, list[str]]:
    fields = asset.fields()
    reasons: list[str] = []
    role = fields.get(FIELD + "ROLE")
    if role not in AssetRole._value2member_map_:
        reasons.append(f"unknown_code: asset role {role!r}")
    status = fields.get(FIELD + "APPROVAL_STATUS")
    if status not in ApprovalStatus._value2member_map_:
        reasons.append(f"unknown_code: approval status {status!r}")
    isbn13 = None
    if fields.get(FIELD + "ISBN"):
        try:
            isbn13 = normalize_isbn(fields[FIELD + "ISBN"])
        except InvalidISBNError as exc:
            reasons.append(f"invalid_isbn: tag {exc.reason} ({fields[FIELD + 'ISBN']!r})")
    work_id = fields.get(FIELD + "WORK_ID")
    if work_id is not None and not str(work_id).isdigit():
        reasons.append(f"unknown_code: work id {work_id!r}")
    record = {
        "asset_id": asset.asset_id,
        "original_asset_id": asset.original_asset_id or asset.asset_id,
        "version": asset.version,
        "name": asset.name,
        "mime_type": asset.mime_type,
        "role": role,
        "isbn13": isbn13,
        "work_id": int(work_id) if work_id is not None and str(work_id).isdigit() else None,
        "approval_status": status,
        "approved_by": fields.get(FIELD + "APPROVED_BY"),
        "approved_at": _timestamp(fields.get(FIELD + "APPROVED_AT"), "approved at", reasons),
        "approval_history": fields.get(FIELD + "APPROVAL_HISTORY") or [],
        "license_from": _day(fields.get(FIELD + "LICENSE_FROM"), "license from", reasons),
        "license_until": _day(fields.get(FIELD + "LICENSE_UNTIL"), "license until", reasons),
        "security_policy_ids": sorted(p.id for p in asset.security_policy_list),
        "tags": _tags(fields),
        "modified_at": asset.date_last_updated,
    }
    return (None, reasons) if reasons else (record, [])


def _tags(fields: dict[str, Any]) -> str:
    import json

    return json.dumps({k: v for k, v in sorted(fields.items()) if k not in KNOWN_FIELDS}, sort_keys=True)


def typed_inventory(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(
        (pl.col("version") == pl.col("version").max().over("original_asset_id")).alias("is_latest"),
        pl.col("license_from").str.to_date(strict=False),
        pl.col("license_until").str.to_date(strict=False),
    ).sort("original_asset_id", "version")
