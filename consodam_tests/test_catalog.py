import hashlib
from datetime import date
from pathlib import Path

from consodam_pipeline.domain.isbn import is_valid_isbn
from consodam_pipeline.domain.roles import AssetRole
from consodam_pipeline.sandbox.catalog import DIRT_KINDS, CatalogSpec, seed_catalog
from consodam_pipeline.sandbox.state import CONSONANCE_DDL, DAM_DDL, StateDB


def seed(tmp: Path, **spec: object) -> tuple[StateDB, StateDB, object]:
    consonance = StateDB(tmp / "c.sqlite", CONSONANCE_DDL)
    dam = StateDB(tmp / "d.sqlite", DAM_DDL)
    stats = seed_catalog(CatalogSpec(anchor=date(2026, 11, 1), **spec), consonance, dam)  # type: ignore[arg-type]
    return consonance, dam, stats


def digest(db: StateDB, table: str) -> str:
    rows = db.query(f"SELECT * FROM {table} ORDER BY 1")
    return hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()


def test_same_seed_same_catalog(tmp_path: Path) -> None:
    a = seed(tmp_path / "a", works=150, seed=3)
    b = seed(tmp_path / "b", works=150, seed=3)
    c = seed(tmp_path / "c", works=150, seed=4)
    for table in ("works", "products"):
        assert digest(a[0], table) == digest(b[0], table)
        assert digest(a[0], table) != digest(c[0], table)
    assert digest(a[1], "assets") == digest(b[1], "assets")


def test_catalog_shape(tmp_path: Path) -> None:
    consonance, dam, stats = seed(tmp_path, works=400, seed=5, dirt_rate=0.0)
    products = consonance.query("SELECT * FROM products")
    isbns = [p["isbn13"] for p in products]
    assert len(isbns) == len(set(isbns)) and all(is_valid_isbn(i) for i in isbns)
    per_work = consonance.query("SELECT work_id, COUNT(*) AS n FROM products GROUP BY work_id")
    assert {r["n"] for r in per_work} <= {1, 2, 3, 4} and len(per_work) == 400
    assert {p["form_code"] for p in products} == {"BB", "BC", "DG", "AJ"}
    years = sorted(int(p["publication_date"][:4]) for p in products)
    assert years[0] < 1990 and years[-1] >= 2027  # backlist and forthcoming
    assert {p["worldwide"] for p in products} == {0, 1}
    assert any(p["row_rights_type"] for p in products)
    assert any(p["embargo_date"] for p in products)
    assert len({p["imprint"] for p in products}) >= 5
    versions = dam.query("SELECT original_asset_id, MAX(version) AS v FROM assets GROUP BY original_asset_id")
    assert {r["v"] for r in versions} == {1, 2, 3, 4, 5}
    roles = {r["role"] for r in dam.query("SELECT DISTINCT role FROM assets")}
    assert roles == {role.value for role in AssetRole} - {"title_sheet"}  # consodam writes those
    # Production files carry their rendition facts, with the retailers' usual rejections mixed in.
    facts = dam.query(
        "SELECT role, mime_type, width_px, height_px, colour_space, page_count, duration_s FROM assets"
    )
    assert any(r["role"] == "full_cover" and r["colour_space"] == "RGB" for r in facts)  # an RGB print cover
    assert any(
        r["role"] == "front_cover" and r["width_px"] == r["height_px"] == 1400 for r in facts
    )  # small audio
    assert any(r["mime_type"] == "application/epub+zip" for r in facts)
    assert all((r["duration_s"] or 0) > 0 for r in facts if r["role"] == "full_content_audio")
    assert all((r["page_count"] or 0) > 0 for r in facts if r["role"] == "full_content")
    ebooks = {p["isbn13"] for p in products if p["form_code"] == "DG"}
    with_epub = {
        r["isbn"] for r in dam.query("SELECT isbn FROM assets WHERE mime_type = 'application/epub+zip'")
    }
    assert ebooks - with_epub and ebooks & with_epub  # some ebooks lack their EPUB
    todos = consonance.query("SELECT * FROM todos")
    assert {t["name"] for t in todos if t["milestone"]} == {"Cover approval", "Production sign-off"}
    assert dam.query("SELECT COUNT(*) AS n FROM assets WHERE license_until IS NOT NULL")[0]["n"] > 0
    assert {r["approval_status"] for r in dam.query("SELECT DISTINCT approval_status FROM assets")} == {
        "approved",
        "in_review",
        "draft",
        "rejected",
    }
    assert stats.asset_versions == dam.query("SELECT COUNT(*) AS n FROM assets")[0]["n"]  # type: ignore[attr-defined]


def test_dirt_is_injected_at_the_configured_rate(tmp_path: Path) -> None:
    _, _, stats = seed(tmp_path, works=600, seed=9, dirt_rate=0.05)
    dirt = stats.dirt  # type: ignore[attr-defined]
    assert set(dirt) == set(DIRT_KINDS) and all(n > 0 for n in dirt.values())
    clean = seed(tmp_path / "clean", works=600, seed=9, dirt_rate=0.0)[2]
    assert sum(clean.dirt.values()) == 0  # type: ignore[attr-defined]
