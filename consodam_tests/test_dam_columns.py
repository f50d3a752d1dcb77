"""The DAM ingest's column-wise approval history is exactly what a readable rule reads off each asset."""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from consodam_pipeline.clients.dam_models import FIELD, decode_page
from consodam_pipeline.sync.dam_ingest import HISTORY_COLUMNS, HISTORY_FIELD, normalize_versions

NAMES = ["STATUS", "BY", "AT", "NOTE"]  # NOTE: a column the history does not read


def history_by_rule(asset: dict[str, Any]) -> list[dict[str, str | None]]:
    """Entry i of the first status, by and at columns of the asset's history fields; null where a column
    is shorter or missing."""
    columns: dict[str, list[str | None]] = {}
    for element in asset["metadata"]["metadata_element_list"]:
        if element["id"] != HISTORY_FIELD:
            continue
        for column in element["metadata_element_list"]:
            name = re.sub(r".*_", "", column["id"]).lower()
            if name in HISTORY_COLUMNS and name not in columns:
                columns[name] = [(cell["value"] or {}).get("value") for cell in column["values"]]
    length = max((len(values) for values in columns.values()), default=0)
    return [
        {name: (columns.get(name, [])[i:] or [None])[0] for name in HISTORY_COLUMNS} for i in range(length)
    ]


cell = st.one_of(
    st.none(), st.sampled_from(["approved", "in_review", "ed@p.example", "2024-01-02T03:04:05Z"])
)
column = st.builds(
    lambda name, cells: {
        "id": f"{HISTORY_FIELD}_{name}",
        "type": "com.artesia.metadata.MetadataTableField",
        "values": [{"value": None if c is None else {"type": "string", "value": c}} for c in cells],
    },
    st.sampled_from(NAMES),
    st.lists(cell, max_size=4),
)
history_field = st.builds(
    lambda columns: {
        "id": HISTORY_FIELD,
        "type": "com.artesia.metadata.MetadataTableField",
        "metadata_element_list": columns,
    },
    st.lists(column, max_size=5),
)
# What every version needs to be accepted at all (a role and a decision), so each one's history is read.
ACCEPTED = [
    {"id": FIELD + name, "value": {"value": {"type": "string", "value": value}}}
    for name, value in (("ROLE", "front_cover"), ("APPROVAL_STATUS", "approved"))
]


def page(histories: list[list[dict[str, Any]]]) -> tuple[str, list[dict[str, Any]]]:
    assets = [
        {
            "asset_id": f"{n:040x}",
            "original_asset_id": f"{n:040x}",
            "version": 1,
            "date_last_updated": "2024-01-01T00:00:00.000Z",
            "name": f"cover {n}.jpg",
            "mime_type": "image/jpeg",
            "security_policy_list": [{"id": 1}],
            "metadata": {"metadata_element_list": [*ACCEPTED, *fields]},
        }
        for n, fields in enumerate(histories)
    ]
    body = {"assets_resource": {"asset_list": assets, "total_number_of_items": len(assets)}}
    return json.dumps(body), assets


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(history_field, max_size=2), min_size=1, max_size=6))
def test_approval_history_is_what_the_rule_reads(histories: list[list[dict[str, Any]]]) -> None:
    text, assets = page(histories)
    versions = decode_page(text).assets
    good, _ = normalize_versions(versions)
    assert good.height == len(assets)
    read = dict(zip(good["asset_id"], good["approval_history"].to_list(), strict=True))
    assert read == {asset["asset_id"]: history_by_rule(asset) for asset in assets}
