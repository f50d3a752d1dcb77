"""People at work in the two systems, through `/_sandbox/`, and how each change shows in the other system.

A reviewer approves a new version of a cover (Consonance links it) or rejects the linked one (the link goes);
a designer uploads a new version for a title held at a milestone (a review task opens in the DAM); a
production editor moves a title to its cover milestone (review tasks open); a rights manager narrows an
edition's territory (the DAM's restriction follows); a publisher moves a date into the launch window (the
launch collection takes the title). Each picks its subject from consodam's own tables, never a work another
change already touched, and answers how to see the change arrive (used by `consodam deploy-check` and
`consodam bench latency`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import polars as pl

from consodam_pipeline.derived.restrictions import RIGHTS_FIELD
from consodam_pipeline.domain.launch import collection_name
from consodam_pipeline.sandbox.process import SandboxProcess
from consodam_pipeline.sync.consonance_resources import asset_in_url

NARROWED = ["GB", "IE"]
COVERS = ("front_cover", "full_cover")
EARLY_STAGES = ("Acquisition", "Editorial", "Design")  # before any milestone
MILESTONE = "Cover approval"
LAUNCH_IN_DAYS = 30  # a date this far ahead is inside the launch window
KINDS = ("approval", "rejection", "new_version", "milestone", "rights", "date_move")
Shown = Callable[[], bool | str]  # True once the other system shows the change; else what it shows


@dataclass
class Change:
    """A change one person makes: `make()` makes it and returns how to see it arrive. `then` is a second
    set-up step, made once the first has reached both systems (a milestone set in Consonance while the
    DAM's rejections are still on their way would be met by the versions just rejected)."""

    kind: str
    subject: str
    make: Callable[[], Shown]
    then: Callable[[], None] | None = None


@dataclass
class PeopleAtWork:
    sandbox: SandboxProcess
    tables: Path  # consodam's Parquet tables (CONSODAM_TABLES_PATH)
    used_works: set[int] = field(default_factory=set)
    _token: str = ""

    # ---- what consodam's tables say, for picking subjects ------------------------------------------

    def _table(self, name: str) -> pl.DataFrame:
        path = self.tables / name
        return pl.read_parquet(path if path.is_dir() else path.with_suffix(".parquet"))

    def _pick(self, candidates: pl.DataFrame, skip: int = 0) -> dict[str, Any]:
        """The first candidate (by product id) of a work no change has touched yet, after `skip` more."""
        fresh = candidates.filter(~pl.col("work_id").is_in(list(self.used_works))).unique(
            "work_id", keep="first", maintain_order=True
        )
        if fresh.height <= skip:
            raise LookupError(f"no more candidates among {candidates.height} rows: the catalog is too small")
        row = fresh.row(skip, named=True)
        self.used_works.add(int(row["work_id"]))
        return row

    def _linked_covers(self) -> pl.DataFrame:
        links = self._table("approved_version_links")
        covers = links.filter((pl.col("role") == "front_cover") & (pl.col("scope") == "edition"))
        return covers.sort("product_id")

    def _early_print_titles(self) -> pl.DataFrame:
        titles = self._table("title_metadata_snapshot").filter(
            (pl.col("format_family") == "print") & pl.col("project_stage").is_in(EARLY_STAGES)
        )
        fronts = self._table("dam_asset_inventory").filter(
            pl.col("is_latest") & (pl.col("role") == "front_cover") & pl.col("isbn13").is_not_null()
        )
        return titles.join(fronts.select("isbn13", "asset_id"), on="isbn13").sort("product_id")

    # ---- the changes ---------------------------------------------------------------------------------

    def approve_a_new_cover(self, skip: int = 0) -> tuple[int, str]:
        """A reviewer approves a new version of a linked front cover; (product, new asset id)."""
        cover = self._pick(self._linked_covers(), skip)
        new = self.sandbox.approve_new_version(cover["asset_id"])
        return int(cover["product_id"]), str(new["asset_id"])

    def approval(self) -> Change:
        cover = self._pick(self._linked_covers())
        product = int(cover["product_id"])

        def make() -> Shown:
            asset = str(self.sandbox.approve_new_version(cover["asset_id"])["asset_id"])
            return lambda: asset in self.linked_assets(product) or "not linked yet"

        return Change("approval", f"a new version of {cover['asset_id']} approved", make)

    def rejection(self) -> Change:
        cover = self._pick(self._linked_covers())
        product, asset = int(cover["product_id"]), str(cover["asset_id"])

        def make() -> Shown:
            self._decide(asset, "rejected")
            return lambda: asset not in self.linked_assets(product) or "still linked"

        return Change("rejection", f"linked front cover {asset} rejected", make)

    def new_version(self) -> Change:
        """Set up now: the title's front covers rejected and the title at its cover milestone (consodam asks
        for a cover). The change: a designer uploads a new version for review."""
        title = self._pick(self._early_print_titles())
        self._reject_covers(title["isbn13"], ("front_cover",))

        def make() -> Shown:
            new = self._upload_for_review(title["asset_id"])
            return lambda: self.review_task_open(new, title["isbn13"])

        subject = f"a cover uploaded for {title['isbn13']} at its milestone"
        return Change("new_version", subject, make, then=lambda: self._at_milestone(title["product_id"]))

    def milestone(self) -> Change:
        """Set up now: the title's covers rejected, a new front cover in review. The change: the title
        reaches its cover milestone (a review task opens for the cover in review)."""
        title = self._pick(self._early_print_titles())
        self._reject_covers(title["isbn13"], COVERS)
        new = self._upload_for_review(title["asset_id"])

        def make() -> Shown:
            self._at_milestone(title["product_id"])
            return lambda: self.review_task_open(new, title["isbn13"])

        return Change("milestone", f"{title['isbn13']} moved to {MILESTONE}", make)

    def narrow_rights(self, skip: int = 0) -> list[str]:
        """A rights manager sells a worldwide edition in GB and IE only; the edition's own visible versions
        (their RIGHTS_COUNTRIES should become "GB IE"; a work-wide version also serves other editions)."""
        titles = self._table("title_metadata_snapshot")
        matrix = self._table("rights_matrix").filter(pl.col("visible"))
        newest = self._table("dam_asset_inventory").filter(pl.col("is_latest"))
        watched = newest.join(matrix.select("asset_id", "isbn13"), on=["asset_id", "isbn13"], how="semi")
        worldwide = titles.filter(pl.col("for_sale_worldwide")).join(
            watched.select("isbn13").unique(), on="isbn13", how="semi"
        )
        title = self._pick(worldwide.sort("product_id"), skip)
        self.sandbox.admin(
            "consonance",
            "POST",
            f"/_sandbox/products/{title['product_id']}",
            json={"isForSaleWorldwide": False, "forSaleCountryCodes": NARROWED},
        )
        return [str(a) for a in watched.filter(pl.col("isbn13") == title["isbn13"])["asset_id"].unique()]

    def rights(self) -> Change:
        def make() -> Shown:
            assets = self.narrow_rights()
            return lambda: self.rights_in_dam(assets)

        return Change("rights", "a worldwide edition narrowed to GB and IE", make)

    def date_move(self) -> Change:
        """A published title with a linked cover gets a new edition's date inside the launch window (for sale
        worldwide, forthcoming): its launch collection takes its linked cover."""
        titles = self._table("title_metadata_snapshot").filter(pl.col("publication_date") < date.today())
        title = self._pick(
            titles.join(self._linked_covers().select("product_id", "asset_id"), on="product_id")
        )
        launch_day = date.today() + timedelta(days=LAUNCH_IN_DAYS)
        name = collection_name(launch_day, title["imprint"])

        def make() -> Shown:
            fields = {
                "publicationDate": launch_day.isoformat(),
                "onixPublishingStatusCode": "02",
                "isForSaleWorldwide": True,
                "notForSaleCountryCodes": [],
                "salesEmbargoDate": None,
            }
            self.sandbox.admin("consonance", "POST", f"/_sandbox/products/{title['product_id']}", json=fields)
            return lambda: title["asset_id"] in self.collection(name) or f"not in {name!r} yet"

        return Change("date_move", f"{title['isbn13']} moved to {launch_day}", make)

    def change(self, kind: str) -> Change:
        """A change of this kind, its subject picked (and set up) now."""
        if kind not in KINDS:
            raise ValueError(f"unknown change {kind!r}; one of {', '.join(KINDS)}")
        made: Change = getattr(self, kind)()
        return made

    # ---- set-up steps ---------------------------------------------------------------------------------

    def _decide(self, asset_id: str, status: str) -> None:
        self.sandbox.admin("dam", "POST", f"/_sandbox/assets/{asset_id}/approval", json={"status": status})

    def _reject_covers(self, isbn: str, roles: tuple[str, ...]) -> None:
        versions = self._table("dam_asset_inventory").filter(
            (pl.col("isbn13") == isbn)
            & pl.col("role").is_in(roles)
            & (pl.col("approval_status") != "rejected")
        )
        for asset_id in versions["asset_id"]:
            self._decide(asset_id, "rejected")

    def _upload_for_review(self, asset_id: str) -> str:
        new = str(
            self.sandbox.admin("dam", "POST", f"/_sandbox/assets/{asset_id}/versions", json={})["asset_id"]
        )
        self._decide(new, "in_review")
        return new

    def _at_milestone(self, product_id: int) -> None:
        self.sandbox.admin(
            "consonance", "POST", f"/_sandbox/products/{product_id}/milestone", json={"stage": MILESTONE}
        )

    # ---- what each system shows now --------------------------------------------------------------------

    def _dam(self, path: str, **params: str) -> Any:
        for _ in range(2):
            if not self._token:
                self._token = self.sandbox.dam_token()
            reply = httpx.get(
                f"{self.sandbox.dam_url}/otmmapi/v6/{path}",
                params=params,
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=30,
            )
            if reply.status_code != 401:
                reply.raise_for_status()
                return reply.json()
            self._token = ""  # expired: ask for another
        reply.raise_for_status()

    def linked_assets(self, product_id: int) -> set[str]:
        """The DAM versions Consonance links to the product now."""
        product = self.sandbox.graphql(
            "query($i: Int!) { product(id: $i) { work { supportingResources { imageRemoteUrl productIds } } } }",
            {"i": product_id},
        )["data"]["product"]
        resources = product["work"]["supportingResources"] if product else []
        return {
            str(asset_in_url(r["imageRemoteUrl"]))
            for r in resources
            if product_id in r["productIds"] and asset_in_url(r["imageRemoteUrl"])
        }

    def linked_in_consonance(self, product_id: int, asset_id: str) -> bool:
        return asset_id in self.linked_assets(product_id)

    def review_task_open(self, asset_id: str, isbn: str) -> bool | str:
        tasks = self._dam("reviewtasks", isbn=isbn, status="open")["review_tasks"]
        return any(t["asset_id"] == asset_id for t in tasks) or f"{len(tasks)} other open task(s)"

    def rights_in_dam(self, assets: list[str]) -> bool | str:
        """True once the DAM shows the narrowed territory on every one of `assets`; else what it shows."""
        values = {self.dam_field(a, RIGHTS_FIELD + "COUNTRIES") for a in assets}
        return values == {" ".join(NARROWED)} or f"RIGHTS_COUNTRIES {sorted(v or '' for v in values)}"

    def dam_field(self, asset_id: str, field_id: str) -> str | None:
        asset = self._dam(f"assets/{asset_id}")["asset_resource"]["asset"]
        for element in asset["metadata"]["metadata_element_list"]:
            if element["id"] == field_id:
                value = element.get("value", {}).get("value") or {}
                return str(value.get("value")) if value.get("value") is not None else None
        return None

    def collection(self, name: str) -> set[str]:
        """The asset ids in the DAM collection of this name (none if there is no such collection)."""
        listed = self._dam("collections")["collection_resource"]["collection"]
        ids = [c["id"] for c in listed if c["name"] == name]
        if not ids:
            return set()
        members = self._dam(f"collections/{ids[0]}/assets")["assets_resource"]["asset_list"]
        return {str(a["asset_id"]) for a in members}
