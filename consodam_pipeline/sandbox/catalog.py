"""Deterministic catalog generator: a seed, a size and an anchor date in, the same catalog out.

Works get 1–4 editions (hardback, paperback, ebook, downloadable audio) with unique valid ISBN-13s,
contributors, imprints, publication dates over decades plus the coming year, sales rights in the three
ONIX shapes (WORLD with exclusions, explicit lists, rest-of-world), embargoes and project stages. The
DAM side gets covers, author photos, jacket copy, samples, audio samples and promo graphics with 1–5
versions and an approval history. A small, configurable share of records is dirty on purpose.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import cast

from consodam_pipeline.domain.isbn import make_isbn13
from consodam_pipeline.domain.roles import ApprovalStatus, AssetRole
from consodam_pipeline.domain.timestamps import format_ts
from consodam_pipeline.sandbox.consonance.schema import isbn_forms
from consodam_pipeline.sandbox.state import StateDB

IMPRINTS = (
    "Harbour Press",
    "Northlight",
    "Quillfeather",
    "Blue Lantern",
    "Ashgrove",
    "Meridian Kids",
    "Stonebridge",
)
FIRST = (
    "Ada",
    "Ben",
    "Chloe",
    "Dev",
    "Elena",
    "Farid",
    "Grace",
    "Hugo",
    "Iris",
    "Jonah",
    "Kemi",
    "Luca",
    "Mara",
    "Nils",
    "Olu",
    "Priya",
    "Quinn",
    "Rosa",
    "Sami",
    "Tess",
    "Umar",
    "Vera",
    "Wen",
    "Yusuf",
    "Zoe",
)
LAST = (
    "Abbott",
    "Baptiste",
    "Chen",
    "Dahl",
    "Eze",
    "Fitzgerald",
    "Garcia",
    "Haddad",
    "Ivanova",
    "Jensen",
    "Kaur",
    "Lindqvist",
    "Moreau",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Quiroga",
    "Rossi",
    "Sato",
    "Tanaka",
    "Usman",
    "Varga",
    "Walsh",
    "Xu",
    "Yilmaz",
    "Zielinski",
)
WORDS = (
    "Salt",
    "Orchard",
    "Winter",
    "Glass",
    "River",
    "Lantern",
    "Hollow",
    "Cartographer",
    "Ember",
    "Tide",
    "Ivory",
    "Garden",
    "Signal",
    "Harvest",
    "Meridian",
    "Quiet",
    "Paper",
    "Falcon",
    "Atlas",
    "Night",
)
STAGES_FORTHCOMING = (
    "Acquisition",
    "Editorial",
    "Design",
    "Cover approval",
    "Production sign-off",
    "Files to press",
)
# Production to-dos (Consonance's workflow): name, days before publication it is due, milestone or not.
TODOS = (
    ("Manuscript delivery", 270, False),
    ("Cover approval", 150, True),
    ("Copyedit complete", 120, False),
    ("Production sign-off", 75, True),
    ("Files to press", 45, False),
    ("Delivered to warehouse", 14, False),
)
FORMATS = ("BB", "BC", "DG", "AJ")  # ONIX 2.1 codes as Consonance exposes them
EXPLICIT_TERRITORIES = (
    ("GB", "IE"),
    ("GB", "IE", "AU", "NZ", "ZA"),
    ("US", "CA"),
    ("US", "CA", "PH"),
    ("DE", "AT", "CH"),
    ("FR", "BE", "LU", "CH"),
    ("AU", "NZ"),
    ("IN", "LK", "BD", "NP"),
)
WORLD_EXCLUSIONS = ((), (), ("US", "CA"), ("CN",), ("US", "CA", "PH"), ("AU", "NZ"))
REVIEWERS = (
    "art.director@publisher.example",
    "editor@publisher.example",
    "marketing@publisher.example",
    "rights@publisher.example",
)
DIRT_KINDS = ("bad_check_digit", "unknown_territory", "malformed_date", "missing_date", "orphan_isbn_tag")

# Bumped whenever the same spec would generate a different catalog, so saved catalogs are not reused.
CATALOG_REVISION = 4
# Shares of production files that are missing or fail a retailer's technical requirement (F5's dirt).
NO_PRODUCTION_FILES = 0.25
SMALL_AUDIO_COVER = 0.12
RGB_PRINT_COVER = 0.12


@dataclass
class CatalogSpec:
    works: int = 1000
    seed: int = 7
    anchor: date = field(default_factory=date.today)
    dirt_rate: float = 0.005

    def as_meta(self) -> dict[str, str]:
        return {
            "works": str(self.works),
            "seed": str(self.seed),
            "anchor": self.anchor.isoformat(),
            "dirt_rate": repr(self.dirt_rate),
        }


@dataclass
class CatalogStats:
    works: int = 0
    products: int = 0
    assets: int = 0
    asset_versions: int = 0
    dirt: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DIRT_KINDS, 0))


def asset_uoi(*parts: object) -> str:
    """A 40-hex OTMM-style asset id, derived so the same catalog always gets the same ids."""
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()


def _isbn_for(product_id: int, seed: int) -> str:
    # An affine map over 10^9 cores (7919 is coprime with 10^9), so ISBNs are unique and not sequential.
    core = (product_id * 7919 + seed * 104729) % 1_000_000_000
    return make_isbn13(f"{core:09d}", "978")


_ts = format_ts


class _WorkBuilder:
    def __init__(self, spec: CatalogSpec, index: int, first_product_id: int) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed * 10_000_019 + index)
        self.work_id = index + 1
        self.next_product_id = first_product_id
        self.anchor_dt = datetime.combine(spec.anchor, datetime.min.time())
        self.dirt: list[str] = []
        self._imprint = IMPRINTS[0]
        self.title = ""

    def dirty(self) -> bool:
        return self.rng.random() < self.spec.dirt_rate

    def person(self) -> str:
        return f"{self.rng.choice(FIRST)} {self.rng.choice(LAST)}"

    def work_row(self) -> tuple[object, ...]:
        rng = self.rng
        title = f"The {rng.choice(WORDS)} {rng.choice(WORDS)}"
        roles = ["A01", *rng.choices(["A01", "A12", "B06"], k=rng.choice((0, 0, 0, 1, 2)))]
        contributions = [
            {
                "id": self.work_id * 10 + n,
                "sequenceNumber": n + 1,
                "onixContributorRoleCode": role,
                "contributor": {"id": self.work_id * 10 + n, "name": self.person()},
            }
            for n, role in enumerate(roles)
        ]
        subtitle = rng.choice((None, None, "A Novel", "Stories", "A Memoir"))
        self.title = title
        return (self.work_id, title, subtitle, json.dumps(contributions))

    def publication(self) -> tuple[date, str, str]:
        rng, anchor = self.rng, self.spec.anchor
        roll = rng.random()
        if roll < 0.15:
            first = anchor + timedelta(days=rng.randint(1, 365))
            return first, "02", rng.choice(STAGES_FORTHCOMING)
        if roll < 0.20:
            return anchor - timedelta(days=rng.randint(0, 60)), "04", "Published"
        first = anchor - timedelta(days=rng.randint(61, 50 * 365))
        return first, rng.choice(("04", "04", "04", "04", "07", "06")), "Published"

    def rights(self) -> tuple[list[str], list[str], int, str | None]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.55:
            return [], list(rng.choice(WORLD_EXCLUSIONS)), 1, None
        if roll < 0.80:
            return list(rng.choice(EXPLICIT_TERRITORIES)), [], 0, None
        for_sale = list(rng.choice(EXPLICIT_TERRITORIES))
        not_for_sale = [c for c in ("US", "CA", "CN") if c not in for_sale][: rng.randint(0, 2)]
        return for_sale, not_for_sale, 0, rng.choice(("02", "02", "03", "00"))

    def products(self) -> list[tuple[object, ...]]:
        rng = self.rng
        count = rng.choices((1, 2, 3, 4), weights=(20, 35, 30, 15))[0]
        forms = list(FORMATS[:count]) if rng.random() < 0.7 else rng.sample(FORMATS, count)
        first_pub, status, stage = self.publication()
        for_sale, not_for_sale, worldwide, row_type = self.rights()
        rows: list[tuple[object, ...]] = []
        for n, form in enumerate(forms):
            pid = self.next_product_id
            self.next_product_id += 1
            pub = first_pub + timedelta(days=0 if n == 0 else rng.randint(0, 400))
            is_forthcoming = pub > self.spec.anchor
            embargo = (
                pub - timedelta(days=rng.randint(0, 7)) if is_forthcoming and rng.random() < 0.4 else None
            )
            isbn = _isbn_for(pid, self.spec.seed)
            pub_text: str | None = pub.isoformat()
            fs, nfs = list(for_sale), list(not_for_sale)
            if self.dirty():
                kind = rng.choice(DIRT_KINDS[:4])
                self.dirt.append(kind)
                if kind == "bad_check_digit":
                    isbn = isbn[:12] + str((int(isbn[12]) + 1) % 10)
                elif kind == "unknown_territory":
                    (fs if fs else nfs).append(rng.choice(("XX", "UK", "EU")))
                elif kind == "malformed_date":
                    pub_text = rng.choice(
                        (f"{pub.year}-02-30", "TBC", f"{pub.day:02d}/{pub.month:02d}/{pub.year}")
                    )
                else:
                    pub_text = None
            changed = self.anchor_dt - timedelta(days=rng.randint(2, 3 * 365), seconds=rng.randint(0, 86399))
            rows.append(
                (
                    pid,
                    self.work_id,
                    isbn,
                    self.title,
                    None,
                    pub_text,
                    embargo.isoformat() if embargo else None,
                    "02" if is_forthcoming else status,
                    form,
                    rng.choice(IMPRINTS) if n == 0 else self._imprint,
                    stage if is_forthcoming else "Published",
                    json.dumps(fs),
                    json.dumps(nfs),
                    worldwide,
                    row_type,
                    changed.date().isoformat(),
                    _ts(changed),
                )
            )
            if n == 0:
                self._imprint = str(rows[0][9])
        return rows

    def versions(
        self, role: AssetRole, isbn: str | None, folder: str, form: str | None = None
    ) -> list[tuple[object, ...]]:
        rng = self.rng
        n_versions = rng.choices((1, 2, 3, 4, 5), weights=(45, 25, 15, 10, 5))[0]
        original = asset_uoi(self.spec.seed, self.work_id, role, isbn, 1)
        created = self.anchor_dt - timedelta(days=rng.randint(30, 5 * 365), seconds=rng.randint(0, 86399))
        licensed = role is AssetRole.CONTRIBUTOR_PICTURE and rng.random() < 0.4
        ext, mime = _FILE_KIND[role]
        if role is AssetRole.FULL_CONTENT and form == "DG":
            ext, mime = "epub", "application/epub+zip"
        facts = rendition(role, form, rng)
        rows: list[tuple[object, ...]] = []
        # Nothing happens after the catalog's "today": every upload and decision is in the past, in order.
        latest_start = self.anchor_dt - timedelta(hours=12)
        previous = created
        for v in range(1, n_versions + 1):
            latest = v == n_versions
            created += timedelta(days=rng.randint(1, 120), seconds=rng.randint(0, 86399))
            if created > latest_start:
                # Spread late uploads over the time left rather than stacking them on one instant: a
                # real changes feed never has thousands of edits in the same minute.
                room = max(60, int((latest_start - previous).total_seconds()))
                created = previous + timedelta(seconds=rng.randint(60, room))
            previous = created
            status = (
                rng.choices(("approved", "in_review", "draft", "rejected"), weights=(72, 14, 9, 5))[0]
                if latest
                else rng.choice(("approved", "approved", "rejected"))
            )
            history = [
                {"status": "in_review", "by": rng.choice(REVIEWERS), "at": _ts(created + timedelta(hours=2))}
            ]
            modified = created + timedelta(hours=2)
            approved_by = approved_at = None
            if status in ("approved", "rejected"):
                # The decision comes 3 hours to 10 days after the upload, and before the anchor.
                room = int((self.anchor_dt - timedelta(minutes=1) - created).total_seconds())
                modified = created + timedelta(
                    seconds=rng.randint(3 * 3600, max(3 * 3600, min(240 * 3600, room)))
                )
                who = rng.choice(REVIEWERS)
                history.append({"status": status, "by": who, "at": _ts(modified)})
                if status == ApprovalStatus.APPROVED:
                    approved_by, approved_at = who, _ts(modified)
            elif status == "draft":
                history, modified = [], created
            lic_from = lic_until = None
            if licensed:
                lic_from = created.date().isoformat()
                lic_until = (created.date() + timedelta(days=rng.randint(365, 6 * 365))).isoformat()
            asset_id = original if v == 1 else asset_uoi(self.spec.seed, self.work_id, role, isbn, v)
            rows.append(
                (
                    asset_id,
                    original,
                    v,
                    int(latest),
                    f"{self.title} {role.value.replace('_', ' ')} v{v}.{ext}",
                    mime,
                    role.value,
                    isbn,
                    str(self.work_id),
                    folder,
                    _ts(created),
                    _ts(min(modified, self.anchor_dt)),
                    status,
                    approved_by,
                    approved_at,
                    json.dumps(history),
                    lic_from,
                    lic_until,
                    *facts,
                )
            )
        return rows

    def production_files(self, form: str, isbn: str, folder: str) -> list[tuple[object, ...]]:
        """The files a format's production needs: print a cover and an interior, ebook an EPUB, audio the
        audiobook (a missing one is F5's most common gap)."""
        if form in ("BB", "BC"):
            return self.versions(AssetRole.FULL_COVER, isbn, folder, form) + self.versions(
                AssetRole.FULL_CONTENT, isbn, folder, form
            )
        if form == "DG":
            return self.versions(AssetRole.FULL_CONTENT, isbn, folder, form)
        if form == "AJ":
            return self.versions(AssetRole.FULL_CONTENT_AUDIO, isbn, folder, form)
        return []

    def todos(self, products: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
        """Each forthcoming edition's production to-dos, due relative to publication; those due before
        its current stage are done."""
        rows: list[tuple[object, ...]] = []
        for product in products:
            pub_text, stage = product[5], str(product[10])
            if stage == "Published" or not isinstance(pub_text, str):
                continue
            try:
                pub = date.fromisoformat(pub_text)
            except ValueError:
                continue
            reached = STAGES_FORTHCOMING.index(stage) if stage in STAGES_FORTHCOMING else 0
            for name, days_before, milestone in TODOS:
                done = name in STAGES_FORTHCOMING and STAGES_FORTHCOMING.index(name) < reached
                due = pub - timedelta(days=days_before)
                rows.append(
                    (
                        product[0],
                        name,
                        int(milestone),
                        due.isoformat(),
                        min(due, self.spec.anchor).isoformat() if done else None,
                    )
                )
        return rows

    def assets(self, products: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
        rng = self.rng
        folder = f"folder-imprint-{IMPRINTS.index(str(products[0][9]))}"
        rows: list[tuple[object, ...]] = []
        for product in products:
            isbn = str(product[2])
            if self.dirty():
                self.dirt.append("orphan_isbn_tag")
                isbn = make_isbn13(f"{rng.randint(0, 10**9 - 1):09d}", "979")
            form = str(product[8])
            rows += self.versions(AssetRole.FRONT_COVER, isbn, folder, form)
            if form in ("BB", "BC") and rng.random() < 0.3:
                rows += self.versions(AssetRole.BACK_COVER, isbn, folder, form)
            if form == "AJ":
                rows += self.versions(AssetRole.AUDIO_SAMPLE, None, folder, form)
            if rng.random() >= NO_PRODUCTION_FILES:
                rows += self.production_files(form, isbn, folder)
        if rng.random() < 0.6:
            rows += self.versions(AssetRole.CONTRIBUTOR_PICTURE, None, folder)
        rows += self.versions(AssetRole.JACKET_COPY, None, folder)
        if rng.random() < 0.5:
            rows += self.versions(AssetRole.SAMPLE_CONTENT, None, folder)
        if rng.random() < 0.4:
            rows += self.versions(AssetRole.PROMOTIONAL_IMAGE, None, folder)
        return rows


_FILE_KIND = {
    AssetRole.FRONT_COVER: ("jpg", "image/jpeg"),
    AssetRole.BACK_COVER: ("jpg", "image/jpeg"),
    AssetRole.CONTRIBUTOR_PICTURE: ("jpg", "image/jpeg"),
    AssetRole.JACKET_COPY: (
        "docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ),
    AssetRole.SAMPLE_CONTENT: ("pdf", "application/pdf"),
    AssetRole.AUDIO_SAMPLE: ("mp3", "audio/mpeg"),
    AssetRole.PROMOTIONAL_IMAGE: ("png", "image/png"),
    AssetRole.FULL_COVER: ("pdf", "application/pdf"),
    AssetRole.FULL_CONTENT: ("pdf", "application/pdf"),
    AssetRole.FULL_CONTENT_AUDIO: ("mp3", "audio/mpeg"),
}


def rendition(role: AssetRole, form: str | None, rng: random.Random) -> tuple[object, ...]:
    """(width px, height px, colour space, file size bytes, page count, duration s) of a file of this role,
    with the retailers' most common rejections mixed in (a small audio cover, an RGB print cover)."""
    width = height = pages = duration = None
    colour: str | None = None
    if role is AssetRole.FRONT_COVER and form == "AJ":
        width = height = 1400 if rng.random() < SMALL_AUDIO_COVER else rng.choice((2400, 3000))
        colour = "RGB"
    elif role in (AssetRole.FRONT_COVER, AssetRole.CONTRIBUTOR_PICTURE, AssetRole.PROMOTIONAL_IMAGE):
        width, height, colour = rng.choice((1600, 1800, 2000)), rng.choice((2400, 2700, 3000)), "RGB"
    elif role in (AssetRole.FULL_COVER, AssetRole.BACK_COVER):
        width, height = rng.choice((3300, 3600)), 2700
        colour = "RGB" if rng.random() < RGB_PRINT_COVER else "CMYK"
    elif role in (AssetRole.FULL_CONTENT, AssetRole.SAMPLE_CONTENT, AssetRole.JACKET_COPY):
        pages = rng.randint(120, 640) if role is AssetRole.FULL_CONTENT else rng.randint(1, 30)
    elif role in (AssetRole.FULL_CONTENT_AUDIO, AssetRole.AUDIO_SAMPLE):
        duration = (
            rng.randint(3 * 3600, 20 * 3600) if role is AssetRole.FULL_CONTENT_AUDIO else rng.randint(60, 300)
        )
    size = rng.randint(200_000, 900_000_000 if role is AssetRole.FULL_CONTENT_AUDIO else 90_000_000)
    return width, height, colour, size, pages, duration


@dataclass
class WorkRows:
    """One work's rows in both systems' state."""

    work: tuple[object, ...]
    products: list[tuple[object, ...]]
    assets: list[tuple[object, ...]]
    todos: list[tuple[object, ...]]


def iter_catalog(spec: CatalogSpec, stats: CatalogStats) -> Iterator[WorkRows]:
    next_product = 1
    for index in range(spec.works):
        builder = _WorkBuilder(spec, index, next_product)
        work = builder.work_row()
        products = builder.products()
        assets = builder.assets(products)
        todos = builder.todos(products)
        next_product = builder.next_product_id
        stats.works += 1
        stats.products += len(products)
        stats.asset_versions += len(assets)
        stats.assets += sum(1 for a in assets if a[2] == 1)
        for kind in builder.dirt:
            stats.dirt[kind] += 1
        yield WorkRows(work, products, assets, todos)


PRODUCT_INSERT = "INSERT INTO products VALUES (" + ",".join("?" * 19) + ")"  # the record, its ISBN's forms
ASSET_INSERT = (
    "INSERT INTO assets (asset_id, original_asset_id, version, latest, name, mime_type, role, isbn, work_id, "
    "folder_id, created_at, modified_at, approval_status, approved_by, approved_at, approval_history, "
    "license_from, license_until, width_px, height_px, colour_space, file_size, page_count, duration_s) "
    "VALUES (" + ",".join("?" * 24) + ")"
)
TODO_INSERT = "INSERT INTO todos (product_id, name, milestone, due_date, done_date) VALUES (?,?,?,?,?)"


def seed_catalog(
    spec: CatalogSpec, consonance: StateDB, dam: StateDB, batch_works: int = 2000
) -> CatalogStats:
    """Write the catalog into both servers' state, in batches so memory stays flat at any size."""
    stats = CatalogStats()
    works: list[tuple[object, ...]] = []
    products: list[tuple[object, ...]] = []
    assets: list[tuple[object, ...]] = []
    todos: list[tuple[object, ...]] = []

    def flush() -> None:
        with consonance.tx() as c:
            c.executemany("INSERT INTO works VALUES (?,?,?,?)", works)
            c.executemany(PRODUCT_INSERT, [(*p, *isbn_forms(cast(str | None, p[2]))) for p in products])
            c.executemany(TODO_INSERT, todos)
        with dam.tx() as d:
            d.executemany(ASSET_INSERT, assets)
        for rows in (works, products, assets, todos):
            rows.clear()

    indexes = {db: db.drop_indexes() for db in (consonance, dam)}
    for db in indexes:
        db.conn.execute("PRAGMA synchronous=OFF")  # a crash mid-seed just means seeding again
    for rows in iter_catalog(spec, stats):
        works.append(rows.work)
        products.extend(rows.products)
        assets.extend(rows.assets)
        todos.extend(rows.todos)
        if len(works) >= batch_works:
            flush()
    flush()
    for db, ddl in indexes.items():
        db.create_indexes(ddl)
        db.conn.execute("PRAGMA synchronous=NORMAL")
    with dam.tx() as d:
        d.executemany(
            "INSERT OR IGNORE INTO folders VALUES (?,?,?)",
            [("folder-root", "Title assets", None)]
            + [(f"folder-imprint-{i}", name, "folder-root") for i, name in enumerate(IMPRINTS)],
        )
        d.executemany(
            "INSERT OR IGNORE INTO security_policies VALUES (?,?,?,?)",
            [
                (
                    1,
                    "Internal",
                    "Visible to staff only",
                    _ts(datetime.combine(spec.anchor, datetime.min.time())),
                ),
                (
                    2,
                    "Public",
                    "Visible and downloadable by trade partners",
                    _ts(datetime.combine(spec.anchor, datetime.min.time())),
                ),
                (
                    3,
                    "Embargoed",
                    "Visible to staff until embargo lifts",
                    _ts(datetime.combine(spec.anchor, datetime.min.time())),
                ),
            ],
        )
    for db in (consonance, dam):
        with db.tx() as c:
            c.executemany(
                "INSERT OR REPLACE INTO meta VALUES (?,?)",
                [
                    *spec.as_meta().items(),
                    ("stats", json.dumps(stats.__dict__)),
                    ("revision", str(CATALOG_REVISION)),
                ],
            )
    return stats
