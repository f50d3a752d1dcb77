"""Editions and DAM inventory frames straight from a generated catalog (no HTTP), for benchmarks that
measure what happens after ingest. The frames have the ingest assets' schemas."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import polars as pl

from consodam_pipeline.domain.isbn import isbn13_valid_expr
from consodam_pipeline.domain.onix import ONIX21_TO_PRODUCT_FORM, format_family
from consodam_pipeline.sync.consonance_ingest import EDITION_SCHEMA, typed_editions
from consodam_pipeline.sync.dam_ingest import VERSION_SCHEMA, typed_inventory


def _query(path: Path, sql: str) -> pl.DataFrame:
    with sqlite3.connect(path) as conn:
        cursor = conn.execute(sql)
        columns = [c[0] for c in cursor.description]
        return pl.DataFrame(cursor.fetchall(), schema=columns, orient="row", infer_schema_length=None)


def catalog_frames(data_dir: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    products = _query(
        data_dir / "consonance.sqlite",
        "SELECT p.id, p.isbn13, p.work_id, p.full_title, p.subtitle, p.imprint, p.form_code, "
        "p.publication_date, p.embargo_date, p.publishing_status, p.project_stage, p.worldwide, p.for_sale, "
        "p.not_for_sale, p.row_rights_type, w.contributions, (SELECT json_group_array("
        "json_object('name', t.name, 'milestone', json(CASE t.milestone WHEN 1 THEN 'true' ELSE 'false' "
        "END), 'due_date', t.due_date, 'done_date', t.done_date)) FROM todos t WHERE t.product_id = p.id"
        ") AS todos FROM products p JOIN works w ON w.id = p.work_id",
    )
    forms = {code: (form.value, format_family(form).value) for code, form in ONIX21_TO_PRODUCT_FORM.items()}
    editions = products.filter(
        isbn13_valid_expr("isbn13") & pl.col("publication_date").str.to_date(strict=False).is_not_null()
    ).select(
        pl.col("id").alias("product_id"),
        "isbn13",
        "work_id",
        pl.col("full_title").alias("title"),
        "subtitle",
        pl.col("contributions")
        .map_elements(
            lambda c: [
                {"name": x["contributor"]["name"], "role": x["onixContributorRoleCode"]}
                for x in json.loads(c)
            ],
            return_dtype=EDITION_SCHEMA["contributors"],
        )
        .alias("contributors"),
        "imprint",
        pl.col("form_code").replace_strict({k: v[0] for k, v in forms.items()}).alias("product_form"),
        pl.col("form_code").alias("product_form_onix21"),
        pl.col("form_code").replace_strict({k: v[1] for k, v in forms.items()}).alias("format_family"),
        "publication_date",
        pl.col("embargo_date"),
        pl.col("publishing_status"),
        pl.col("project_stage"),
        (pl.col("worldwide") == 1).alias("for_sale_worldwide"),
        pl.col("for_sale").str.json_decode(pl.List(pl.String)).alias("for_sale_countries"),
        pl.col("not_for_sale").str.json_decode(pl.List(pl.String)).alias("not_for_sale_countries"),
        pl.col("row_rights_type").alias("row_sales_rights_type"),
        pl.lit("").alias("sales_rights"),
        pl.col("todos").str.json_decode(EDITION_SCHEMA["todos"]),
    )
    valid_codes = set(json.loads('["' + '","'.join(_codes()) + '"]'))
    editions = editions.filter(
        pl.concat_list("for_sale_countries", "not_for_sale_countries")
        .list.eval(pl.element().is_in(list(valid_codes)))
        .list.all()
    )
    assets = _query(data_dir / "dam.sqlite", "SELECT * FROM assets WHERE deleted = 0")
    inventory = assets.select(
        "asset_id",
        "original_asset_id",
        "version",
        "name",
        "mime_type",
        "role",
        pl.col("isbn").alias("isbn13"),
        pl.col("work_id").cast(pl.Int64),
        "approval_status",
        "approved_by",
        "approved_at",
        pl.col("approval_history").str.json_decode(VERSION_SCHEMA["approval_history"]),
        "license_from",
        "license_until",
        pl.col("security_policies").str.json_decode(pl.List(pl.Int64)).alias("security_policy_ids"),
        pl.lit([], dtype=VERSION_SCHEMA["tags"]).alias("tags"),
        pl.col("modified_at"),
        "width_px",
        "height_px",
        "colour_space",
        "file_size",
        "page_count",
        "duration_s",
    )
    editions = typed_editions(editions.select([pl.col(n).cast(t) for n, t in EDITION_SCHEMA.items()]))
    inventory = typed_inventory(
        inventory.lazy().select([pl.col(n).cast(t) for n, t in VERSION_SCHEMA.items()])
    ).collect()
    known = editions["isbn13"].implode()
    works = editions["work_id"].implode()
    orphan = (pl.col("isbn13").is_not_null() & ~pl.col("isbn13").is_in(known)) | ~pl.col("work_id").is_in(
        works
    )
    return editions, inventory.with_columns(orphan.alias("orphan_tag"))


def _codes() -> tuple[str, ...]:
    from consodam_pipeline.domain.territories import COUNTRY_CODES

    return COUNTRY_CODES
