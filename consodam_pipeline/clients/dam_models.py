"""The OTMM v6 shapes the DAM client reads: assets with nested metadata (as pydantic models, and a page of
them decoded column-wise into polars), review tasks, the usage log, tokens. A reply that parses but has an
unexpected shape raises at once, naming where."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl
from pydantic import BaseModel, ConfigDict, Field

FIELD = "CONSODAM.FIELD."
MODIFIED_FIELD = "ARTESIA.FIELD.DATE LAST MODIFIED"


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class MetadataElement(_Loose):
    id: str
    type: str | None = None
    value: dict[str, Any] | None = None
    values: list[dict[str, Any]] | None = None
    metadata_element_list: list[MetadataElement] | None = None

    def scalar(self) -> Any:
        inner = (self.value or {}).get("value")
        return inner.get("value") if isinstance(inner, dict) else inner

    def column(self) -> list[Any]:
        return [(v.get("value") or {}).get("value") for v in self.values or []]


class _Metadata(_Loose):
    metadata_element_list: list[MetadataElement] = Field(default_factory=list)


class SecurityPolicyRef(_Loose):
    id: int


class DamAsset(_Loose):
    asset_id: str
    original_asset_id: str | None = None
    version: int = 1
    latest_version: bool = True
    date_last_updated: str | None = None
    name: str | None = None
    mime_type: str | None = None
    locked: bool = False
    security_policy_list: list[SecurityPolicyRef] = Field(default_factory=list)
    metadata: _Metadata = Field(default_factory=_Metadata)

    def fields(self) -> dict[str, Any]:
        """Scalar metadata by field id; a tabular field becomes a list of row dicts."""
        out: dict[str, Any] = {}
        for element in self.metadata.metadata_element_list:
            if element.metadata_element_list is not None:
                columns = {c.id.rsplit("_", 1)[-1].lower(): c.column() for c in element.metadata_element_list}
                length = max((len(v) for v in columns.values()), default=0)
                out[element.id] = [{k: v[i] for k, v in columns.items() if i < len(v)} for i in range(length)]
            else:
                out[element.id] = element.scalar()
        return out


class _AssetsResource(_Loose):
    asset_list: list[DamAsset] = Field(default_factory=list)
    total_number_of_items: int = 0


class AssetsResponse(_Loose):
    assets_resource: _AssetsResource


class _SearchResult(_Loose):
    hit_count: int = 0
    total_hit_count: int = 0


class _SearchResource(_Loose):
    search_result: _SearchResult
    asset_list: list[DamAsset] = Field(default_factory=list)


class SearchResponse(_Loose):
    search_result_resource: _SearchResource


# Bulk listings are decoded straight into columns (a typed polars schema of the same OTMM shape): a page of
# 1,000 versions carries ~2.5 MB of nested metadata, and building ~40 Python objects per version cost
# three times what the whole transfer did. Single-asset calls keep the pydantic models above.
_VALUE = pl.Struct({"type": pl.String, "value": pl.String})
_ELEMENT = pl.Struct(
    {
        "id": pl.String,
        "value": pl.Struct({"value": _VALUE}),
        "metadata_element_list": pl.List(
            pl.Struct({"id": pl.String, "values": pl.List(pl.Struct({"value": _VALUE}))})
        ),
    }
)
_ASSET = pl.Struct(
    {
        "asset_id": pl.String,
        "original_asset_id": pl.String,
        "version": pl.Int64,
        "date_last_updated": pl.String,
        "name": pl.String,
        "mime_type": pl.String,
        "security_policy_list": pl.List(pl.Struct({"id": pl.Int64})),
        "metadata": pl.Struct({"metadata_element_list": pl.List(_ELEMENT)}),
    }
)
_LIST_ENVELOPE = pl.Struct(
    {"assets_resource": pl.Struct({"asset_list": pl.List(_ASSET), "total_number_of_items": pl.Int64})}
)
_SEARCH_ENVELOPE = pl.Struct(
    {
        "search_result_resource": pl.Struct(
            {"search_result": pl.Struct({"total_hit_count": pl.Int64}), "asset_list": pl.List(_ASSET)}
        )
    }
)


@dataclass
class AssetPage:
    """One page of assets as columns: asset_id … date_last_updated, policies, elements (nested metadata)."""

    assets: pl.DataFrame
    total: int


def decode_page(text: str, search: bool = False) -> AssetPage:
    envelope = _SEARCH_ENVELOPE if search else _LIST_ENVELOPE
    try:
        decoded = pl.DataFrame({"raw": [text]}).select(pl.col("raw").str.json_decode(envelope)).unnest("raw")
    except pl.exceptions.PolarsError as exc:
        raise ValueError(f"unreadable asset page: {type(exc).__name__}") from None
    body = decoded.unnest(decoded.columns[0])
    if search:
        total = body.select(pl.col("search_result").struct.field("total_hit_count")).item()
    else:
        total = body["total_number_of_items"].item()
    if total is None or body["asset_list"].item() is None:
        raise ValueError("asset page without a total or an asset list")
    assets = (
        body.select(pl.col("asset_list").explode())
        .unnest("asset_list")
        .drop_nulls("asset_id")
        .with_columns(
            pl.col("security_policy_list").list.eval(pl.element().struct.field("id")).alias("policies"),
            pl.col("metadata").struct.field("metadata_element_list").alias("elements"),
        )
        .drop("security_policy_list", "metadata")
    )
    return AssetPage(assets, int(total))


class ReviewTask(_Loose):
    """A review task (sandbox convention): `review` asks for a decision on one asset version for a
    milestone; `request` asks for an asset a milestone needs and the DAM lacks or cannot use."""

    task_id: str
    kind: str = "review"
    asset_id: str | None = None
    isbn: str | None = None
    milestone: str
    requirement: str | None = None
    status: str
    note: str | None = None
    created_at: str | None = None
    completed_at: str | None = None
    completed_by: str | None = None


class ReviewTasks(_Loose):
    review_tasks: list[ReviewTask]


class ReviewTaskReply(_Loose):
    review_task: ReviewTask


class UsageRow(_Loose):
    """A download or delivery of one asset version (the DAM's usage log; sandbox convention)."""

    seq: int
    asset_id: str
    used_by: str
    channel: str
    action: str
    used_at: str


class _UsageList(_Loose):
    usage_list: list[UsageRow]


class UsageReply(_Loose):
    usage_resource: _UsageList


class Token(_Loose):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int = 3600
