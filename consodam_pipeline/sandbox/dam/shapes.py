"""The DAM sandbox's shapes: metadata fields, searchable fields, an asset as OTMM v6 returns it, faults."""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any

from starlette.responses import JSONResponse

F = "CONSODAM.FIELD."
MODIFIED_FIELD = "ARTESIA.FIELD.DATE LAST MODIFIED"
SEARCHABLE = {
    F + "ISBN": "isbn",
    F + "WORK_ID": "work_id",
    F + "ROLE": "role",
    F + "APPROVAL_STATUS": "approval_status",
}
RENDITION = {
    F + "WIDTH_PX": "width_px",
    F + "HEIGHT_PX": "height_px",
    F + "COLOUR_SPACE": "colour_space",
    F + "FILE_SIZE": "file_size",
    F + "PAGE_COUNT": "page_count",
    F + "DURATION_S": "duration_s",
}
PROTECTED = {
    F + "ROLE",
    F + "WORK_ID",
    F + "APPROVED_BY",
    F + "APPROVED_AT",
    F + "APPROVAL_HISTORY",
    *RENDITION,
}
MAX_LIMIT = 2000
USAGE_CHANNELS = (
    ("web", "download"),
    ("retailer_feed", "delivery"),
    ("social", "download"),
    ("catalog", "download"),
    ("press_kit", "delivery"),
)
USERS = ("marketing@publisher.example", "publicity@publisher.example", "sales@publisher.example")


_FILE_NAME = re.compile(r"(?P<stem>.*?)(?: v[0-9]+)?(?P<ext>\.[A-Za-z0-9]{1,5})?", re.DOTALL)


def versioned_name(name: str, version: int) -> str:
    """A new version's file name, as the catalog names them: `Title front cover v3.jpg`,
    `9780… title sheet v2.xml` (the version before the extension, never twice)."""
    parts = _FILE_NAME.fullmatch(name)
    assert parts is not None  # every part of the pattern is optional
    return f"{parts['stem']} v{version}{parts['ext'] or ''}"


def field(field_id: str, value: Any, kind: str = "string") -> dict[str, Any]:
    return {
        "id": field_id,
        "name": field_id.rsplit(".", 1)[-1].replace("_", " ").title(),
        "type": "com.artesia.metadata.MetadataField",
        "value": {"value": {"type": kind, "value": value}} if value is not None else {"value": None},
    }


def history_table(history: list[dict[str, str]]) -> dict[str, Any]:
    columns = (("STATUS", "status"), ("BY", "by"), ("AT", "at"))
    return {
        "id": F + "APPROVAL_HISTORY",
        "name": "Approval History",
        "type": "com.artesia.metadata.MetadataTableField",
        "metadata_element_list": [
            {
                "id": f"{F}APPROVAL_HISTORY_{col}",
                "values": [{"value": {"type": "string", "value": h[key]}} for h in history],
            }
            for col, key in columns
        ],
    }


def asset_json(row: sqlite3.Row, detail: str = "full") -> dict[str, Any]:
    base = {
        "asset_id": row["asset_id"],
        "original_asset_id": row["original_asset_id"],
        "version": row["version"],
        "latest_version": bool(row["latest"]),
        "date_last_updated": row["modified_at"],
    }
    if detail == "slim":
        return base
    elements = [
        field(F + "ROLE", row["role"]),
        field(F + "ISBN", row["isbn"]),
        field(F + "WORK_ID", row["work_id"]),
        field(F + "APPROVAL_STATUS", row["approval_status"]),
        field(F + "APPROVED_BY", row["approved_by"]),
        field(F + "APPROVED_AT", row["approved_at"], "dateTime"),
        field(F + "LICENSE_FROM", row["license_from"], "date"),
        field(F + "LICENSE_UNTIL", row["license_until"], "date"),
        history_table(json.loads(row["approval_history"])),
        *[
            field(
                fid,
                None
                if row[col] is None
                else f"{row[col]:g}"
                if isinstance(row[col], float)
                else str(row[col]),
            )
            for fid, col in RENDITION.items()
        ],
    ]
    elements += [field(k, v) for k, v in sorted(json.loads(row["extra_metadata"]).items())]
    return {
        **base,
        "name": row["name"],
        "mime_type": row["mime_type"],
        "metadata_model_id": "CONSODAM.MODEL.TITLE_ASSET",
        "date_imported": row["created_at"],
        "asset_state": "NORMAL",
        "deleted": bool(row["deleted"]),
        "locked": row["locked_by"] is not None,
        "security_policy_list": [{"id": p} for p in json.loads(row["security_policies"])],
        "asset_content_info": {
            "master_content": {"id": row["asset_id"], "name": row["name"], "mime_type": row["mime_type"]}
        },
        "metadata": {"metadata_element_list": elements},
    }


def fault(status: int, message: str, code: str) -> JSONResponse:
    return JSONResponse(
        {"fault": {"faultstring": message, "detail": {"errorcode": code}}}, status_code=status
    )


def not_found(asset_id: str) -> JSONResponse:
    return JSONResponse(
        {"exception_body": {"message": f"asset {asset_id} not found", "http_response_code": 404}},
        status_code=404,
    )
