"""People at work in the two systems, through `/_sandbox/`: a reviewer approves a new version of a cover, a
rights manager narrows an edition's territory. Each picks its subject from consodam's own tables and says
how to see the change arrive in the other system (used by `consodam deploy-check`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from consodam_pipeline.derived.restrictions import RIGHTS_FIELD
from consodam_pipeline.sandbox.process import SandboxProcess
from consodam_pipeline.verify import consonance_holdings, dam_inventory

NARROWED = ["GB", "IE"]


@dataclass
class PeopleAtWork:
    sandbox: SandboxProcess
    tables: Path  # consodam's Parquet tables (CONSODAM_TABLES_PATH)

    def approve_a_new_cover(self, skip: int = 0) -> tuple[int, str]:
        """A reviewer approves a new version of a linked front cover; (product, new asset id)."""
        links = pl.read_parquet(self.tables / "approved_version_links")
        covers = links.filter((pl.col("role") == "front_cover") & (pl.col("scope") == "edition"))
        cover = covers.sort("product_id").row(skip % covers.height, named=True)
        new = self.sandbox.approve_new_version(cover["asset_id"])
        return int(cover["product_id"]), str(new["asset_id"])

    def linked_in_consonance(self, product_id: int, asset_id: str) -> bool:
        return (product_id, asset_id) in consonance_holdings(self.sandbox)

    def narrow_rights(self, skip: int = 0) -> list[str]:
        """A rights manager sells a worldwide edition in GB and IE only; the edition's own visible versions
        (their RIGHTS_COUNTRIES should become "GB IE"; a work-wide version also serves other editions)."""
        titles = pl.read_parquet(self.tables / "title_metadata_snapshot.parquet")
        matrix = pl.read_parquet(self.tables / "rights_matrix").filter(pl.col("visible"))
        newest = pl.read_parquet(self.tables / "dam_asset_inventory.parquet").filter(pl.col("is_latest"))
        watched = newest.join(matrix.select("asset_id", "isbn13"), on=["asset_id", "isbn13"], how="semi")
        worldwide = titles.filter(pl.col("for_sale_worldwide")).join(
            watched.select("isbn13").unique(), on="isbn13", how="semi"
        )
        title = worldwide.sort("product_id").row(skip % worldwide.height, named=True)
        self.sandbox.admin(
            "consonance",
            "POST",
            f"/_sandbox/products/{title['product_id']}",
            json={"isForSaleWorldwide": False, "forSaleCountryCodes": NARROWED},
        )
        return [str(a) for a in watched.filter(pl.col("isbn13") == title["isbn13"])["asset_id"].unique()]

    def rights_in_dam(self, assets: list[str]) -> bool | str:
        """True once the DAM shows the narrowed territory on every one of `assets`; else what it shows."""
        inventory = dam_inventory(self.sandbox).filter(pl.col("asset_id").is_in(assets))
        values = set()
        for tags in inventory["tags"].to_list():
            values |= {t["value"] for t in tags or [] if t["id"] == RIGHTS_FIELD + "COUNTRIES"}
        return values == {" ".join(NARROWED)} or f"RIGHTS_COUNTRIES {sorted(v or '' for v in values)}"
